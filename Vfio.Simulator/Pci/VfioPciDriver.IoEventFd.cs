// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator.Interop;

namespace Vfio.Simulator;

internal sealed partial class VfioPciDriver
{
    /// <summary>VFIO_PCI_IOEVENTFD_MAX: ioeventfds per device.</summary>
    internal const int IoEventFdMax = 1000;

    private readonly List<IoEventFd> _ioeventfds = [];

    /// <summary>One ioeventfd (vfio_pci_rdwr.c's <c>struct vfio_pci_ioeventfd</c>): a BAR write of <c>data</c> with
    /// <c>count</c> bytes at <c>pos</c>, done by the kernel whenever the eventfd is signalled.</summary>
    private sealed record IoEventFd(int Bar, ulong Pos, ulong Data, int Count, VirqFd VirqFd);

    /// <summary>How many ioeventfds the device has (for tests).</summary>
    internal int IoEventFdCount => _ioeventfds.Count;

    /// <summary>vfio_pci_ioctl_ioeventfd + vfio_pci_ioeventfd.</summary>
    private int IoEventFdIoctl(nint argument)
    {
        const int Minsz = 28; // offsetofend(struct vfio_device_ioeventfd, fd)
        if (UserMemory.Read(argument, Minsz, out vfio_device_ioeventfd cmd) < 0)
        {
            return -EFAULT;
        }
        if (cmd.argsz < Minsz || (cmd.flags & ~VfioUapi.VFIO_DEVICE_IOEVENTFD_SIZE_MASK) != 0)
        {
            return -EINVAL;
        }
        uint count = cmd.flags & VfioUapi.VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
        if (System.Numerics.BitOperations.PopCount(count) != 1 || cmd.fd < -1)
        {
            return -EINVAL;
        }
        ulong pos = cmd.offset & OffsetMask;
        ulong index = cmd.offset >> OffsetShift;
        // Only BARs: config space, ROM and VGA are refused.
        if (index > VfioUapi.VFIO_PCI_BAR5_REGION_INDEX)
        {
            return -EINVAL;
        }
        int bar = (int)index;
        ulong barSize = BarAt(bar)?.Size ?? 0;
        if (pos + count > barSize || pos + count < pos)
        {
            return -EINVAL;
        }
        // No ioeventfd may work around the kernel's ownership of the MSI-X table.
        (ulong tableStart, ulong tableEnd) = MsixTableRange(bar);
        if (pos + count > tableStart && pos < tableEnd)
        {
            return -EINVAL;
        }
        // x86-64 has iowrite64, so 8-byte ioeventfds are accepted.
        IoEventFd? match = _ioeventfds.Find(e => e.Pos == pos && e.Bar == bar && e.Data == cmd.data && e.Count == (int)count);
        if (match is not null)
        {
            if (cmd.fd != -1)
            {
                return -(int)Errno.EEXIST;
            }
            match.VirqFd.Dispose();
            _ioeventfds.Remove(match);
            return 0;
        }
        if (cmd.fd < 0)
        {
            return -(int)Errno.ENODEV;
        }
        if (_ioeventfds.Count >= IoEventFdMax)
        {
            return -(int)Errno.ENOSPC;
        }
        ulong data = cmd.data;
        int width = (int)count;
#pragma warning disable CA2000 // owned by the ioeventfd list from here on; released on teardown and close_device
        int rc = VirqFd.Create(Device.Kernel, cmd.fd, () => IoEventFdWrite(bar, pos, width, data), out VirqFd? virqfd);
#pragma warning restore CA2000
        if (rc < 0)
        {
            return rc;
        }
        _ioeventfds.Add(new IoEventFd(bar, pos, cmd.data, width, virqfd!));
        return 0;
    }

    /// <summary>vfio_pci_ioeventfd_handler: the write, dropped while memory decoding is off (test_mem).</summary>
    private void IoEventFdWrite(int bar, ulong pos, int width, ulong data)
    {
        if (!MemoryEnabled)
        {
            return;
        }
        ulong value = width == 8 ? data : data & ((1UL << (8 * width)) - 1);
        _model.HardwareWrite(bar, pos, width, value);
    }

    /// <summary>vfio_pci_core_disable / release: every ioeventfd is torn down.</summary>
    private void ReleaseIoEventFds()
    {
        foreach (IoEventFd ioeventfd in _ioeventfds)
        {
            ioeventfd.VirqFd.Dispose();
        }
        _ioeventfds.Clear();
    }
}
