// SPDX-License-Identifier: MIT
using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Vfio.Core.Interop;

namespace Vfio.Core;

public sealed partial class VfioDevice
{
    /// <summary>Eventfd vectors whose <c>vfio_irq_set</c> is built on the stack; more use a pooled buffer.</summary>
    private const int StackIrqVectors = 64;

    /// <summary>Eventfd handles held in an inline buffer during the call; more use a pooled array.</summary>
    private const int InlineIrqHandles = 8;

    private const string SetIrqs = "VFIO_DEVICE_SET_IRQS";

    private KeyValuePair<string, object?>[]?[]? _interruptTags;

    /// <summary>Returns the info of IRQ index <paramref name="index"/> (<c>VFIO_DEVICE_GET_IRQ_INFO</c>).</summary>
    /// <param name="index">The IRQ index (vfio-pci: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4).</param>
    /// <returns>Its flags and interrupt count.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is negative.</exception>
    /// <exception cref="VfioException">The kernel refused (<c>EINVAL</c> for an unknown index, and on vfio-pci for ERR
    /// of a conventional PCI device).</exception>
    public VfioIrqInfo GetIrq(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ThrowIfDisposed();
        var info = new vfio_irq_info { argsz = (uint)Unsafe.SizeOf<vfio_irq_info>(), index = (uint)index };
        int rc = _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_GET_IRQ_INFO, MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref info, 1)));
        if (rc < 0)
        {
            throw new VfioException((Errno)(-rc), "VFIO_DEVICE_GET_IRQ_INFO", IrqName(index),
                (Errno)(-rc) == Errno.EINVAL && index >= Info.IrqCount ? IndexBeyond(index) : null);
        }
        return new VfioIrqInfo(index, (VfioIrqFlags)info.flags, ToCount(info.count, "count", "VFIO_DEVICE_GET_IRQ_INFO"));
    }

    /// <summary>
    /// Wires interrupts <paramref name="start"/>.. of IRQ index <paramref name="index"/> to eventfds
    /// (<c>DATA_EVENTFD | ACTION_TRIGGER</c>); a null entry leaves that vector unwired (fd −1). On vfio-pci this
    /// enables MSI/MSI-X with <c>start + events.Length</c> vectors when the index is not enabled yet, and re-wires
    /// the vectors when it is.
    /// </summary>
    /// <param name="index">The IRQ index.</param>
    /// <param name="start">The first vector.</param>
    /// <param name="events">One event per vector (at least one); null unwires the vector.</param>
    /// <remarks>Allocation-free for up to 8 events; the argument is built on the stack for up to 64.</remarks>
    /// <exception cref="ArgumentException"><paramref name="events"/> is empty (use <see cref="DisableIrq(int)"/>).</exception>
    /// <exception cref="ObjectDisposedException">An event or the device is disposed.</exception>
    /// <exception cref="VfioException">The kernel refused, or could allocate fewer vectors than asked for (then nothing
    /// is enabled; <see cref="TrySetIrqEventFds"/> reports how many it could).</exception>
    public void SetIrqEventFds(int index, int start, ReadOnlySpan<InterruptEvent?> events)
    {
        if (!TrySetIrqEventFds(index, start, events, out int available))
        {
            throw new VfioException(SetIrqs, IrqName(index),
                $"the kernel could allocate only {available} of the {(long)start + events.Length} vectors asked for, so it enabled none",
                "Ask for at most that many vectors (QEMU retries with the count the kernel returns).");
        }
    }

    /// <summary>
    /// As <see cref="SetIrqEventFds"/>, but reports the kernel's positive answer to an MSI/MSI-X enable instead of
    /// throwing: when the host can allocate only k &lt; <c>start + events.Length</c> vectors, vfio-pci enables nothing
    /// and returns k.
    /// </summary>
    /// <param name="index">The IRQ index.</param>
    /// <param name="start">The first vector.</param>
    /// <param name="events">One event per vector (at least one); null unwires the vector.</param>
    /// <param name="availableVectors">When the method returns false, the number of vectors the kernel could
    /// allocate; 0 otherwise.</param>
    /// <returns>True when the eventfds are wired; false when nothing was enabled for lack of vectors.</returns>
    /// <exception cref="ArgumentException"><paramref name="events"/> is empty.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public bool TrySetIrqEventFds(int index, int start, ReadOnlySpan<InterruptEvent?> events, out int availableVectors)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (events.IsEmpty)
        {
            throw new ArgumentException("At least one event is needed; DisableIrq disables an index.", nameof(events));
        }
        int rc = SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER, start, events.Length, events, withData: true);
        ThrowIrq(rc, index, start, events.Length, VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER);
        availableVectors = rc;
        if (rc == 0)
        {
            KeyValuePair<string, object?>[] tags = InterruptTags(index);
            foreach (InterruptEvent? e in events)
            {
                if (e is not null)
                {
                    e.TelemetryTags = tags;
                    TrackWired(e);
                }
            }
        }
        return rc == 0;
    }

    /// <summary>The tags of <c>vfio.interrupt.count</c> for index <paramref name="index"/>: made once per index and kept,
    /// so wiring events again allocates nothing (a race makes at most a spare copy).</summary>
    private KeyValuePair<string, object?>[] InterruptTags(int index)
    {
        KeyValuePair<string, object?>[]?[]? all = _interruptTags;
        if (all is null || index >= all.Length)
        {
            all = new KeyValuePair<string, object?>[]?[Math.Max(index + 1, 5)];
            _interruptTags?.CopyTo(all, 0);
            _interruptTags = all;
        }
        return all[index] ??= [new(VfioTelemetry.DeviceAttribute, Name), new(VfioTelemetry.IrqIndexAttribute, index)];
    }

    /// <summary>Disables IRQ index <paramref name="index"/> (<c>DATA_NONE | ACTION_TRIGGER</c>, count 0): frees its
    /// vectors and drops its eventfds.</summary>
    /// <param name="index">The IRQ index.</param>
    /// <exception cref="VfioException">The kernel refused (vfio-pci: <c>EINVAL</c> when the index is not enabled).</exception>
    public void DisableIrq(int index)
        => ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_NONE | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, [], withData: false), index, 0, 0, VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER);

    /// <summary>Masks interrupts of a maskable index (<c>DATA_NONE | ACTION_MASK</c>).</summary>
    /// <param name="index">The IRQ index (vfio-pci: INTx only).</param>
    /// <param name="start">The first interrupt.</param>
    /// <param name="count">The number of interrupts.</param>
    /// <exception cref="VfioException">The kernel refused (<c>ENOTTY</c> for an index without MASK).</exception>
    public void MaskIrq(int index, int start = 0, int count = 1)
        => ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_NONE | VfioUapi.VFIO_IRQ_SET_ACTION_MASK, start, count, [], withData: false), index, start, count, VfioUapi.VFIO_IRQ_SET_ACTION_MASK);

    /// <summary>Unmasks interrupts (<c>DATA_NONE | ACTION_UNMASK</c>); an automasked line must be unmasked after each
    /// interrupt. A still-pending interrupt is signalled again at once.</summary>
    /// <param name="index">The IRQ index (vfio-pci: INTx only).</param>
    /// <param name="start">The first interrupt.</param>
    /// <param name="count">The number of interrupts.</param>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void UnmaskIrq(int index, int start = 0, int count = 1)
        => ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_NONE | VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK, start, count, [], withData: false), index, start, count, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK);

    /// <summary>Signals the eventfds wired to interrupts as if they had fired (<c>DATA_NONE | ACTION_TRIGGER</c>, a
    /// loopback for tests).</summary>
    /// <param name="index">The IRQ index.</param>
    /// <param name="start">The first interrupt.</param>
    /// <param name="count">The number of interrupts (at least 1; 0 would disable the index).</param>
    /// <exception cref="VfioException">The kernel refused (e.g. <c>EINVAL</c> when the index is not enabled).</exception>
    public void TriggerIrq(int index, int start = 0, int count = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_NONE | VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER, start, count, [], withData: false), index, start, count, VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER);
    }

    /// <summary>Registers (or with null removes) an unmask eventfd for interrupt 0 of <paramref name="index"/>
    /// (<c>DATA_EVENTFD | ACTION_UNMASK</c>): signalling it unmasks the line, the resample path of a KVM irqfd.</summary>
    /// <param name="index">The IRQ index (vfio-pci INTx, or a platform level IRQ).</param>
    /// <param name="unmask">The event, or null to remove the registered one.</param>
    /// <exception cref="VfioException">The kernel refused (<c>EBUSY</c> when one is registered already).</exception>
    public void SetIrqUnmaskEventFd(int index, InterruptEvent? unmask)
        => ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, [unmask], withData: true), index, 0, 1, VfioUapi.VFIO_IRQ_SET_ACTION_UNMASK);

    /// <summary>Registers (or with null removes) a mask eventfd for interrupt 0 of <paramref name="index"/>
    /// (<c>DATA_EVENTFD | ACTION_MASK</c>; vfio-platform level IRQs, vfio-pci answers <c>ENOTTY</c>).</summary>
    /// <param name="index">The IRQ index.</param>
    /// <param name="mask">The event, or null to remove the registered one.</param>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void SetIrqMaskEventFd(int index, InterruptEvent? mask)
        => ThrowIrq(SetIrqsCore(index, VfioUapi.VFIO_IRQ_SET_DATA_EVENTFD | VfioUapi.VFIO_IRQ_SET_ACTION_MASK, 0, 1, [mask], withData: true), index, 0, 1, VfioUapi.VFIO_IRQ_SET_ACTION_MASK);

    private string IrqName(int index) => $"{Name} IRQ index {index}";

    private void ThrowIrq(int rc, int index, int start, int count, uint action)
    {
        if (rc < 0)
        {
            ThrowIrqRefused((Errno)(-rc), index, start, count, action);
        }
    }

    /// <summary>The kernel refused a SET_IRQS: says why from the device's IRQ info (the failure path only, so the
    /// successful calls stay one ioctl and allocation-free).</summary>
    [DoesNotReturn]
    private void ThrowIrqRefused(Errno errno, int index, int start, int count, uint action)
    {
        string? hint = null;
        if (index >= Info.IrqCount)
        {
            hint = IndexBeyond(index);
        }
        else if (TryGetIrqInfo(index, out vfio_irq_info info))
        {
            var flags = (VfioIrqFlags)info.flags;
            string name = IrqName(index);
            if (errno == Errno.EINVAL && (ulong)start + (ulong)count > info.count)
            {
                hint = $"{name} has {info.count} interrupt(s) (VfioDevice.GetIrq({index}).Count): interrupts {start} to {(long)start + count - 1} are beyond it; ask for at most {info.count} from start 0.";
            }
            else if (errno == Errno.ENOTTY && action != VfioUapi.VFIO_IRQ_SET_ACTION_TRIGGER && (flags & VfioIrqFlags.Maskable) == 0)
            {
                hint = $"{name} is not maskable (flags: {flags}): only a maskable index (vfio-pci INTx, a platform level IRQ) can be masked, unmasked or given a mask/unmask eventfd.";
            }
            else if (errno == Errno.EINVAL)
            {
                hint = $"{name} ({info.count} interrupt(s), flags: {flags}) refused the request: wire it first with SetIrqEventFds (an index that is not enabled cannot be triggered, unmasked or disabled), or check the action against its flags.";
            }
        }
        throw new VfioException(errno, SetIrqs, IrqName(index), hint);
    }

    private string IndexBeyond(int index)
        => $"{Name} has {Info.IrqCount} IRQ indexes (0 to {Info.IrqCount - 1}; vfio-pci: INTx 0, MSI 1, MSI-X 2, ERR 3, REQ 4), so index {index} does not exist: use one of those (VfioDevice.Info.IrqCount).";

    private bool TryGetIrqInfo(int index, out vfio_irq_info info)
    {
        info = new vfio_irq_info { argsz = (uint)Unsafe.SizeOf<vfio_irq_info>(), index = (uint)index };
        return _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_GET_IRQ_INFO, MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref info, 1))) == 0;
    }

    /// <summary>Builds <c>struct vfio_irq_set</c> (+ one <c>__s32</c> fd per event when <paramref name="withData"/>)
    /// and issues <c>VFIO_DEVICE_SET_IRQS</c>. Each event's fd is held (AddRef) for the call so a concurrent dispose
    /// cannot hand its number to another file in between.</summary>
    private int SetIrqsCore(int index, uint flags, int start, int count, ReadOnlySpan<InterruptEvent?> events, bool withData)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ThrowIfDisposed();
        int vectors = withData ? events.Length : 0;
        int size = vfio_irq_set.data_offset + (vectors * sizeof(int));
        const int StackBytes = vfio_irq_set.data_offset + (StackIrqVectors * sizeof(int));
        byte[]? rentedBytes = null;
        Span<byte> buffer = size <= StackBytes ? stackalloc byte[StackBytes] : (rentedBytes = ArrayPool<byte>.Shared.Rent(size));
        buffer = buffer[..size];
        MemoryMarshal.Write(buffer, new vfio_irq_set { argsz = (uint)size, flags = flags, index = (uint)index, start = (uint)start, count = (uint)count });

        InlineHandles inline = default;
        SafeHandle?[]? rentedHandles = null;
        Span<SafeHandle?> held = vectors <= InlineIrqHandles ? inline : (rentedHandles = ArrayPool<SafeHandle?>.Shared.Rent(vectors));
        int added = 0;
        try
        {
            Span<int> fds = MemoryMarshal.Cast<byte, int>(buffer[vfio_irq_set.data_offset..]);
            for (; added < vectors; added++)
            {
                InterruptEvent? evt = events[added];
                if (evt is null)
                {
                    held[added] = null;
                    fds[added] = -1;
                    continue;
                }
                SafeHandle handle = evt.Handle;
                bool success = false;
                handle.DangerousAddRef(ref success);
                held[added] = handle;
                fds[added] = (int)handle.DangerousGetHandle();
            }
            return _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_SET_IRQS, buffer);
        }
        finally
        {
            for (int i = 0; i < added; i++)
            {
                held[i]?.DangerousRelease();
                held[i] = null;
            }
            if (rentedHandles is not null)
            {
                ArrayPool<SafeHandle?>.Shared.Return(rentedHandles, clearArray: true);
            }
            if (rentedBytes is not null)
            {
                ArrayPool<byte>.Shared.Return(rentedBytes);
            }
        }
    }

    /// <summary>Room for the handles of up to <see cref="InlineIrqHandles"/> events without a heap allocation.</summary>
    [InlineArray(InlineIrqHandles)]
    private struct InlineHandles
    {
        private SafeHandle? _element;
    }
}
