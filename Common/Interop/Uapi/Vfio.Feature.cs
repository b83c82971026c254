// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): VFIO_DEVICE_FEATURE and the feature payloads (VF token, migration,
// low power, DMA logging, bus master).
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary><c>struct vfio_device_feature</c>, the argument of <c>VFIO_DEVICE_FEATURE</c> (8 bytes + payload).</summary>
/// <remarks>
/// The feature payload (flexible array <c>data[]</c>, e.g. a 16-byte UUID for <c>VFIO_DEVICE_FEATURE_PCI_VF_TOKEN</c>
/// or a <see cref="vfio_device_feature_mig_state"/>) follows at <see cref="data_offset"/>; <see cref="argsz"/>
/// covers it.
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature
{
    /// <summary>Offset of the flexible array <c>data[]</c> from the start of the structure.</summary>
    public const int data_offset = 8;

    /// <summary>Input: size of the structure plus payload.</summary>
    public uint argsz;

    /// <summary>Input: feature index (<c>VFIO_DEVICE_FEATURE_MASK</c> bits) | <c>GET</c>/<c>SET</c>/<c>PROBE</c>.</summary>
    public uint flags;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_MIGRATION</c> (GET): <c>struct vfio_device_feature_migration</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_migration
{
    /// <summary>Output: <c>VFIO_MIGRATION_*</c>.</summary>
    public ulong flags;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE</c> (GET/SET): <c>struct vfio_device_feature_mig_state</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_mig_state
{
    /// <summary>In (SET) / out (GET): a <c>VFIO_DEVICE_STATE_*</c> migration state.</summary>
    public uint device_state;

    /// <summary>Output: migration data fd opened by the transition, or -1.</summary>
    public int data_fd;
}

/// <summary><c>struct vfio_precopy_info</c>, the argument of <c>VFIO_MIG_GET_PRECOPY_INFO</c> on a migration data fd.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_precopy_info
{
    /// <summary>Input: size of the structure (24).</summary>
    public uint argsz;

    /// <summary>Input: must be 0.</summary>
    public uint flags;

    /// <summary>Output: bytes of initial (pre-copy) data still to read.</summary>
    public ulong initial_bytes;

    /// <summary>Output: estimated bytes of dirty data.</summary>
    public ulong dirty_bytes;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP</c> (SET): <c>struct vfio_device_low_power_entry_with_wakeup</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_low_power_entry_with_wakeup
{
    /// <summary>Input: eventfd signalled when the device wakes up.</summary>
    public int wakeup_eventfd;

    /// <summary>Reserved.</summary>
    public uint reserved;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_DMA_LOGGING_START</c> (SET): <c>struct vfio_device_feature_dma_logging_control</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_dma_logging_control
{
    /// <summary>In/out: requested tracking granularity; the kernel writes the one it uses.</summary>
    public ulong page_size;

    /// <summary>Input: number of entries at <see cref="ranges"/>.</summary>
    public uint num_ranges;

    /// <summary>Reserved.</summary>
    public uint __reserved;

    /// <summary>Input: user pointer to <see cref="num_ranges"/> × <see cref="vfio_device_feature_dma_logging_range"/>.</summary>
    public ulong ranges;
}

/// <summary><c>struct vfio_device_feature_dma_logging_range</c>: an IOVA range to track (element of <c>ranges</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_dma_logging_range
{
    /// <summary>First IOVA of the range.</summary>
    public ulong iova;

    /// <summary>Length of the range in bytes.</summary>
    public ulong length;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT</c> (GET): <c>struct vfio_device_feature_dma_logging_report</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_dma_logging_report
{
    /// <summary>Input: first IOVA to report.</summary>
    public ulong iova;

    /// <summary>Input: length of the range to report.</summary>
    public ulong length;

    /// <summary>Input: bytes per bitmap bit (a power of two, at least 4096).</summary>
    public ulong page_size;

    /// <summary>Input: user pointer to the <c>__u64</c> bitmap the kernel fills.</summary>
    public ulong bitmap;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_MIG_DATA_SIZE</c> (GET): <c>struct vfio_device_feature_mig_data_size</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_mig_data_size
{
    /// <summary>Output: estimated size of the STOP_COPY data.</summary>
    public ulong stop_copy_length;
}

/// <summary>Payload of <c>VFIO_DEVICE_FEATURE_BUS_MASTER</c> (SET, CDX only): <c>struct vfio_device_feature_bus_master</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct vfio_device_feature_bus_master
{
    /// <summary>Input: <c>VFIO_DEVICE_FEATURE_CLEAR_MASTER</c> or <c>VFIO_DEVICE_FEATURE_SET_MASTER</c>.</summary>
    public uint op;
}

internal static partial class VfioUapi
{
    /// <summary>Mask of the feature index in <c>vfio_device_feature.flags</c>.</summary>
    public const uint VFIO_DEVICE_FEATURE_MASK = 0xFFFF;

    /// <summary><c>vfio_device_feature.flags</c>: read the feature into the payload.</summary>
    public const uint VFIO_DEVICE_FEATURE_GET = 1u << 16;

    /// <summary><c>vfio_device_feature.flags</c>: write the feature from the payload.</summary>
    public const uint VFIO_DEVICE_FEATURE_SET = 1u << 17;

    /// <summary><c>vfio_device_feature.flags</c>: only test whether the feature (with the GET/SET bits given) is supported.</summary>
    public const uint VFIO_DEVICE_FEATURE_PROBE = 1u << 18;

    /// <summary>Feature 0 (SET): the SR-IOV VF token (16-byte UUID) of a PF.</summary>
    public const uint VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;

    /// <summary>Feature 1 (GET): migration support (<see cref="vfio_device_feature_migration"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_MIGRATION = 1;

    /// <summary>Feature 2 (GET/SET): migration state (<see cref="vfio_device_feature_mig_state"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;

    /// <summary>Feature 3 (SET): enter runtime low-power mode.</summary>
    public const uint VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;

    /// <summary>Feature 4 (SET): enter low-power mode with a wake-up eventfd (<see cref="vfio_device_low_power_entry_with_wakeup"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;

    /// <summary>Feature 5 (SET): leave low-power mode.</summary>
    public const uint VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;

    /// <summary>Feature 6 (SET): start device DMA dirty logging (<see cref="vfio_device_feature_dma_logging_control"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;

    /// <summary>Feature 7 (SET): stop device DMA dirty logging.</summary>
    public const uint VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;

    /// <summary>Feature 8 (GET): read the dirty bitmap (<see cref="vfio_device_feature_dma_logging_report"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;

    /// <summary>Feature 9 (GET): estimated STOP_COPY size (<see cref="vfio_device_feature_mig_data_size"/>).</summary>
    public const uint VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;

    /// <summary>Feature 10 (SET): bus-master control (<see cref="vfio_device_feature_bus_master"/>; CDX only).</summary>
    public const uint VFIO_DEVICE_FEATURE_BUS_MASTER = 10;

    /// <summary><c>vfio_device_feature_bus_master.op</c>: clear bus mastering (block device DMA).</summary>
    public const uint VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;

    /// <summary><c>vfio_device_feature_bus_master.op</c>: set bus mastering.</summary>
    public const uint VFIO_DEVICE_FEATURE_SET_MASTER = 1;

    /// <summary><c>vfio_device_feature_migration.flags</c>: STOP, RUNNING, STOP_COPY and RESUMING are supported.</summary>
    public const ulong VFIO_MIGRATION_STOP_COPY = 1ul << 0;

    /// <summary><c>vfio_device_feature_migration.flags</c>: RUNNING_P2P is supported.</summary>
    public const ulong VFIO_MIGRATION_P2P = 1ul << 1;

    /// <summary><c>vfio_device_feature_migration.flags</c>: PRE_COPY (and with P2P, PRE_COPY_P2P) is supported.</summary>
    public const ulong VFIO_MIGRATION_PRE_COPY = 1ul << 2;

    /// <summary>Migration state: error; cannot be requested.</summary>
    public const uint VFIO_DEVICE_STATE_ERROR = 0;

    /// <summary>Migration state: stopped, no DMA or interrupts.</summary>
    public const uint VFIO_DEVICE_STATE_STOP = 1;

    /// <summary>Migration state: running normally.</summary>
    public const uint VFIO_DEVICE_STATE_RUNNING = 2;

    /// <summary>Migration state: stopped, device state readable from the data fd.</summary>
    public const uint VFIO_DEVICE_STATE_STOP_COPY = 3;

    /// <summary>Migration state: stopped, device state written through the data fd.</summary>
    public const uint VFIO_DEVICE_STATE_RESUMING = 4;

    /// <summary>Migration state: running, but not initiating peer-to-peer DMA.</summary>
    public const uint VFIO_DEVICE_STATE_RUNNING_P2P = 5;

    /// <summary>Migration state: running, pre-copy data readable from the data fd.</summary>
    public const uint VFIO_DEVICE_STATE_PRE_COPY = 6;

    /// <summary>Migration state: PRE_COPY without initiating peer-to-peer DMA.</summary>
    public const uint VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;

    /// <summary>Number of migration states.</summary>
    public const uint VFIO_DEVICE_STATE_NR = 8;

    /// <summary><c>VFIO_DEVICE_FEATURE</c> (device fd; <c>struct vfio_device_feature *</c> + payload, in/out). Same number as <c>VFIO_IOMMU_DIRTY_PAGES</c>.</summary>
    public static readonly uint VFIO_DEVICE_FEATURE = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 17);

    /// <summary><c>VFIO_MIG_GET_PRECOPY_INFO</c> (migration data fd; <c>struct vfio_precopy_info *</c>, in/out). Same number as <c>VFIO_EEH_PE_OP</c>.</summary>
    public static readonly uint VFIO_MIG_GET_PRECOPY_INFO = IoctlEncoding.Io(IoctlEncoding.VFIO_BASE + 21);
}
