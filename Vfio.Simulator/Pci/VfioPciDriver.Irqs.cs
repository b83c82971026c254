// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;

// Eventfd references (SimEventFd.Get) move into the driver's interrupt state, which releases them on replace/disable.
#pragma warning disable CA2000

namespace Vfio.Simulator;

/// <summary>vfio-pci interrupts (vfio_pci_get_irq_count, vfio_pci_set_irqs_ioctl): INTx with automasking, MSI/MSI-X vectors, ERR/REQ triggers.</summary>
internal sealed partial class VfioPciDriver
{
    private int SetIrqs(nint argument)
    {
        int rc = ReadSetIrqs(argument, NumIrqs, IrqCount, out vfio_irq_set header, out byte[] data);
        if (rc < 0)
        {
            return rc;
        }
        uint action = header.flags & VfioUapi.VFIO_IRQ_SET_ACTION_TYPE_MASK;
        uint type = header.flags & VfioUapi.VFIO_IRQ_SET_DATA_TYPE_MASK;
        switch (header.index)
        {
            case VfioUapi.VFIO_PCI_INTX_IRQ_INDEX:
                return action switch
                {
                    VfioUapi.VFIO_IRQ_SET_ACTION_MASK => IntxMaskAction(header, type, data),
                    VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK => IntxUnmaskAction(header, type, data),
                    VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER => IntxTrigger(header, type, data),
                    _ => -ENOTTY,
                };
            case VfioUapi.VFIO_PCI_MSI_IRQ_INDEX:
            case VfioUapi.VFIO_PCI_MSIX_IRQ_INDEX:
                return action == VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER
                    ? MsiTrigger(header, type, data, header.index == VfioUapi.VFIO_PCI_MSIX_IRQ_INDEX)
                    : -ENOTTY;
            case VfioUapi.VFIO_PCI_ERR_IRQ_INDEX:
                return action == VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER && _model.IsPciExpress
                    ? SingleTrigger(ref _errTrigger, header, type, data)
                    : -ENOTTY;
            case VfioUapi.VFIO_PCI_REQ_IRQ_INDEX:
                return action == VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER ? SingleTrigger(ref _reqTrigger, header, type, data) : -ENOTTY;
            default:
                return -ENOTTY;
        }
    }

    // ---- INTx ----

    private int IntxTrigger(in vfio_irq_set header, uint type, byte[] data)
    {
        if (_irqType == IrqType.Intx && header.count == 0 && type == VfioUapi.VFIO_IRQ_SET_DATA_NONE)
        {
            DisableIntx();
            return 0;
        }
        if (_irqType is not (IrqType.Intx or IrqType.None) || header.start != 0 || header.count != 1)
        {
            return -EINVAL;
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
        {
            int fd = FdAt(data, 0);
            SimEventFd? trigger = null;
            if (fd >= 0)
            {
                int rc = SimEventFd.Get(fd, out trigger);
                if (rc < 0)
                {
                    return rc;
                }
            }
            if (_irqType == IrqType.Intx)
            {
                Replace(ref _intxTrigger, trigger);
                return 0;
            }
            if (_model.InterruptPin == 0)
            {
                trigger?.Dispose();
                return -(int)Errno.ENODEV;
            }
            _irqType = IrqType.Intx;
            _intxTrigger = trigger;
            _intxMasked = _virqDisabled;
            EvaluateIntx();
            return 0;
        }
        if (_irqType != IrqType.Intx)
        {
            return -EINVAL;
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[0] != 0)
        {
            SendIntx();
        }
        return 0;
    }

    private int IntxUnmaskAction(in vfio_irq_set header, uint type, byte[] data)
    {
        if (_irqType != IrqType.Intx || header.start != 0 || header.count != 1)
        {
            return -EINVAL;
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
        {
            // The unmask eventfd (KVM resamplefd style): signalling it unmasks.
            int fd = FdAt(data, 0);
            if (fd < 0)
            {
                _intxUnmaskFd?.Dispose();
                _intxUnmaskFd = null;
                return 0;
            }
            int rc = VirqFd.Create(Device.Kernel, fd, IntxUnmask, out VirqFd? virqfd);
            if (rc < 0)
            {
                return rc;
            }
            if (_intxUnmaskFd is not null)
            {
                virqfd!.Dispose();
                return -(int)Errno.EBUSY;
            }
            _intxUnmaskFd = virqfd;
            return 0;
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[0] != 0)
        {
            IntxUnmask();
        }
        return 0;
    }

    private int IntxMaskAction(in vfio_irq_set header, uint type, byte[] data)
    {
        if (_irqType != IrqType.Intx || header.start != 0 || header.count != 1)
        {
            return -EINVAL;
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
        {
            return -ENOTTY; // not implemented in the kernel either
        }
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[0] != 0)
        {
            IntxMask();
        }
        return 0;
    }

    /// <summary>The device drives its INTx line.</summary>
    internal void SetIntxLevel(bool asserted)
    {
        _intxLevel = asserted;
        if (asserted)
        {
            EvaluateIntx();
        }
    }

    /// <summary>vfio_intx_handler: an asserted line on an unmasked INTx masks it and signals the eventfd.</summary>
    private void EvaluateIntx()
    {
        if (_irqType == IrqType.Intx && _intxLevel && !_intxMasked)
        {
            _intxMasked = true;
            SendIntx();
        }
    }

    private void SendIntx()
    {
        if (_irqType == IrqType.Intx && !_virqDisabled)
        {
            _intxTrigger?.Signal();
        }
    }

    private void IntxMask()
    {
        if (_irqType == IrqType.Intx && !_intxMasked)
        {
            _intxMasked = true;
        }
    }

    /// <summary>vfio_pci_intx_unmask: a still-pending interrupt is re-signalled and the line stays masked.</summary>
    private void IntxUnmask()
    {
        if (_irqType == IrqType.Intx && _intxMasked && !_virqDisabled)
        {
            if (_intxLevel)
            {
                SendIntx();
            }
            else
            {
                _intxMasked = false;
            }
        }
    }

    private void DisableIntx()
    {
        _intxUnmaskFd?.Dispose();
        _intxUnmaskFd = null;
        _irqType = IrqType.None;
        Replace(ref _intxTrigger, null);
        _intxMasked = false;
    }

    // ---- MSI / MSI-X ----

    private int MsiTrigger(in vfio_irq_set header, uint type, byte[] data, bool msix)
    {
        IrqType kind = msix ? IrqType.Msix : IrqType.Msi;
        if (_irqType == kind && header.count == 0 && type == VfioUapi.VFIO_IRQ_SET_DATA_NONE)
        {
            DisableMessages();
            return 0;
        }
        if (_irqType != kind && _irqType != IrqType.None)
        {
            return -EINVAL;
        }
        int start = (int)header.start, count = (int)header.count;
        if (type == VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD)
        {
            if (_irqType == kind)
            {
                return SetBlock(start, count, data, msix);
            }
            int rc = EnableMessages(start + count, msix);
            if (rc != 0)
            {
                return rc;
            }
            rc = SetBlock(start, count, data, msix);
            if (rc != 0)
            {
                DisableMessages();
            }
            return rc;
        }
        if (_irqType != kind)
        {
            return -EINVAL;
        }
        for (int i = start; i < start + count; i++)
        {
            if (_vectors[i] is { } vector && (type == VfioUapi.VFIO_IRQ_SET_DATA_NONE || data[i - start] != 0))
            {
                vector.Signal();
            }
        }
        return 0;
    }

    /// <summary>vfio_msi_enable: allocates <paramref name="nvec"/> host vectors, or returns how many it could (&gt; 0).</summary>
    private int EnableMessages(int nvec, bool msix)
    {
        if (_irqType != IrqType.None)
        {
            return -EINVAL;
        }
        if (nvec < 1)
        {
            return -(int)Errno.ERANGE;
        }
        int limit = _model.HostVectorLimit;
        if (limit < nvec)
        {
            return limit > 0 ? limit : -(int)Errno.ENOSPC;
        }
        if (!msix && nvec > 1 && (!Device.Kernel.Topology.InterruptRemapping || Device.Kernel.Topology.Iommu == SimulatedIommu.None))
        {
            // msi_capability_init: x86 gives a device several MSI vectors only through interrupt remapping
            // (MSI_FLAG_MULTI_PCI_MSI); without it the host allocates one, and vfio_msi_enable answers 1.
            return 1;
        }
        _vectors = new SimEventFd?[msix ? _model.MsixVectors : _model.MsiVectors];
        _msixPending = new bool[msix ? _model.MsixVectors : 0];
        _allocated = nvec;
        _irqType = msix ? IrqType.Msix : IrqType.Msi;
        if (msix)
        {
            SetMsixEnableBit(true);
        }
        else
        {
            _msiQmax = System.Numerics.BitOperations.Log2(System.Numerics.BitOperations.RoundUpToPowerOf2((uint)nvec));
        }
        return 0;
    }

    private int SetBlock(int start, int count, byte[] data, bool msix)
    {
        int rc = 0;
        int j = start;
        for (int i = 0; i < count && rc == 0; i++, j++)
        {
            rc = SetVectorSignal(j, FdAt(data, i), msix);
        }
        if (rc != 0)
        {
            for (int k = start; k < j; k++)
            {
                _ = SetVectorSignal(k, -1, msix);
            }
        }
        return rc;
    }

    private int SetVectorSignal(int vector, int fd, bool msix)
    {
        if (vector >= _vectors.Length)
        {
            return -EINVAL;
        }
        Replace(ref _vectors[vector], null);
        if (fd < 0)
        {
            return 0;
        }
        if (vector >= _allocated)
        {
            // MSI cannot grow (NORESIZE); MSI-X allocates vectors on demand where the host has dynamic MSI-X
            // (vfio_msi_alloc_irq: otherwise pci_irq_vector's -EINVAL).
            if (!msix || !_model.DynamicMsix)
            {
                return -EINVAL;
            }
            if (vector >= _model.HostVectorLimit)
            {
                return -(int)Errno.ENOSPC;
            }
            _allocated = vector + 1;
        }
        int rc = SimEventFd.Get(fd, out SimEventFd? trigger);
        if (rc < 0)
        {
            return rc;
        }
        _vectors[vector] = trigger;
        if (msix && _msixPending[vector])
        {
            // request_irq unmasks the table entry, and the device sends the message held in its pending bit.
            _msixPending[vector] = false;
            trigger!.Signal();
        }
        return 0;
    }

    private void DisableMessages()
    {
        for (int i = 0; i < _vectors.Length; i++)
        {
            Replace(ref _vectors[i], null);
        }
        if (_irqType == IrqType.Msix)
        {
            SetMsixEnableBit(false);
        }
        _vectors = [];
        _msixPending = [];
        _allocated = 0;
        _irqType = IrqType.None;
    }

    /// <summary>The device sends a message: delivered only when that kind is enabled, the vector wired and bus
    /// mastering on.</summary>
    internal void NotifyMessage(bool msix, int vector)
    {
        IrqType kind = msix ? IrqType.Msix : IrqType.Msi;
        if (_irqType != kind || !BusMaster || vector < 0 || vector >= _vectors.Length)
        {
            return;
        }
        if (vector < _allocated && _vectors[vector] is { } trigger)
        {
            trigger.Signal();
        }
        else if (msix)
        {
            // An MSI-X vector without a handler is masked in the device's table (msix_mask_all at enable; free_irq
            // masks it when its eventfd is removed): the device holds the message in its pending bit.
            _msixPending[vector] = true;
        }
    }

    // ---- ERR / REQ ----

    private static int SingleTrigger(ref SimEventFd? slot, in vfio_irq_set header, uint type, byte[] data)
    {
        if (header.start != 0 || header.count > 1)
        {
            return -EINVAL;
        }
        switch (type)
        {
            case VfioUapi.VFIO_IRQ_SET_DATA_NONE:
                if (slot is null)
                {
                    return -EINVAL;
                }
                if (header.count != 0)
                {
                    slot.Signal();
                }
                else
                {
                    Replace(ref slot, null);
                }
                return 0;
            case VfioUapi.VFIO_IRQ_SET_DATA_BOOL:
                if (header.count == 0)
                {
                    return -EINVAL;
                }
                if (data[0] != 0)
                {
                    slot?.Signal();
                }
                return 0;
            default:
                if (header.count == 0)
                {
                    return -EINVAL;
                }
                int fd = FdAt(data, 0);
                if (fd == -1)
                {
                    Replace(ref slot, null);
                    return 0;
                }
                if (fd < -1)
                {
                    return -EINVAL;
                }
                int rc = SimEventFd.Get(fd, out SimEventFd? trigger);
                if (rc < 0)
                {
                    return rc;
                }
                Replace(ref slot, trigger);
                return 0;
        }
    }

    private void DisableInterrupts()
    {
        if (_irqType == IrqType.Intx)
        {
            DisableIntx();
        }
        else if (_irqType is IrqType.Msi or IrqType.Msix)
        {
            DisableMessages();
        }
    }
}
