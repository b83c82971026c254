// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): interrupt info and configuration.
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_irq_info</c>, the argument of <c>VFIO_DEVICE_GET_IRQ_INFO</c> (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_irq_info
{
    /// <summary>Input: size of the structure (16).</summary>
    public uint argsz;

    /// <summary>Output: <c>VFIO_IRQ_INFO_*</c>.</summary>
    public uint flags;

    /// <summary>Input: IRQ index (for vfio-pci <c>VFIO_PCI_*_IRQ_INDEX</c>).</summary>
    public uint index;

    /// <summary>Output: number of interrupts at this index (0 = not available).</summary>
    public uint count;
}

/// <summary><c>struct vfio_irq_set</c>, the argument of <c>VFIO_DEVICE_SET_IRQS</c> (20 bytes + data).</summary>
/// <remarks>
/// The flexible array <c>data[]</c> follows at <see cref="data_offset"/>: <see cref="count"/> bytes (bool) for
/// <c>VFIO_IRQ_SET_DATA_BOOL</c>, <see cref="count"/> × <c>__s32</c> eventfds for <c>VFIO_IRQ_SET_DATA_EVENTFD</c>,
/// nothing for <c>VFIO_IRQ_SET_DATA_NONE</c>. <see cref="argsz"/> covers the data.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_irq_set
{
    /// <summary>Offset of the flexible array <c>data[]</c> from the start of the structure.</summary>
    public const int data_offset = 20;

    /// <summary>Input: size of the structure plus data.</summary>
    public uint argsz;

    /// <summary>Input: one <c>VFIO_IRQ_SET_DATA_*</c> | one <c>VFIO_IRQ_SET_ACTION_*</c>.</summary>
    public uint flags;

    /// <summary>Input: IRQ index.</summary>
    public uint index;

    /// <summary>Input: first interrupt within the index.</summary>
    public uint start;

    /// <summary>Input: number of interrupts (and of data elements); 0 with DATA_NONE + TRIGGER disables the index.</summary>
    public uint count;
}

internal static partial class VfioUapi
{
    /// <summary><c>vfio_irq_info.flags</c>: the interrupt can signal an eventfd.</summary>
    public const uint VFIO_IRQ_INFO_EVENTFD = 1u << 0;

    /// <summary><c>vfio_irq_info.flags</c>: MASK/UNMASK actions are supported.</summary>
    public const uint VFIO_IRQ_INFO_MASKABLE = 1u << 1;

    /// <summary><c>vfio_irq_info.flags</c>: the kernel masks the interrupt when it fires; the user must unmask it (level-triggered INTx).</summary>
    public const uint VFIO_IRQ_INFO_AUTOMASKED = 1u << 2;

    /// <summary><c>vfio_irq_info.flags</c>: the set of enabled vectors cannot grow without disabling the index first.</summary>
    public const uint VFIO_IRQ_INFO_NORESIZE = 1u << 3;

    /// <summary><c>vfio_irq_set.flags</c>: no data.</summary>
    public const uint VFIO_IRQ_SET_DATA_NONE = 1u << 0;

    /// <summary><c>vfio_irq_set.flags</c>: data is one <c>__u8</c> boolean per interrupt.</summary>
    public const uint VFIO_IRQ_SET_DATA_BOOL = 1u << 1;

    /// <summary><c>vfio_irq_set.flags</c>: data is one <c>__s32</c> eventfd per interrupt (-1 = none).</summary>
    public const uint VFIO_IRQ_SET_DATA_EVENTFD = 1u << 2;

    /// <summary><c>vfio_irq_set.flags</c>: mask the interrupts.</summary>
    public const uint VFIO_IRQ_SET_ACTION_MASK = 1u << 3;

    /// <summary><c>vfio_irq_set.flags</c>: unmask the interrupts.</summary>
    public const uint VFIO_IRQ_SET_ACTION_UNMASK = 1u << 4;

    /// <summary><c>vfio_irq_set.flags</c>: set up signalling (EVENTFD) or trigger (NONE/BOOL loopback).</summary>
    public const uint VFIO_IRQ_SET_ACTION_TRIGGER = 1u << 5;

    /// <summary>All <c>VFIO_IRQ_SET_DATA_*</c> bits.</summary>
    public const uint VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;

    /// <summary>All <c>VFIO_IRQ_SET_ACTION_*</c> bits.</summary>
    public const uint VFIO_IRQ_SET_ACTION_TYPE_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

    /// <summary><c>VFIO_DEVICE_GET_IRQ_INFO</c> (device fd; <c>struct vfio_irq_info *</c>, in/out).</summary>
    public static readonly uint VFIO_DEVICE_GET_IRQ_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 9);

    /// <summary><c>VFIO_DEVICE_SET_IRQS</c> (device fd; <c>struct vfio_irq_set *</c> + data, in).</summary>
    public static readonly uint VFIO_DEVICE_SET_IRQS = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 10);
}
