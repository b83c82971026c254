// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>An MMIO resource of an <see cref="EmulatedPlatformDevice"/> (a vfio-platform region).</summary>
/// <param name="Size">Its size in bytes.</param>
/// <param name="Writable">False for a read-only resource (no <c>VFIO_REGION_INFO_FLAG_WRITE</c>).</param>
/// <param name="Mappable">Base and size are page-aligned, so vfio-platform reports MMAP (regions smaller than a page never are).</param>
/// <param name="IoPort">An I/O-port resource: vfio-platform reports no access flag for it and refuses reads, writes
/// and mmap with <c>EINVAL</c>.</param>
public sealed record PlatformRegion(ulong Size, bool Writable = true, bool Mappable = false, bool IoPort = false);

/// <summary>An interrupt line of an <see cref="EmulatedPlatformDevice"/>.</summary>
/// <param name="LevelTriggered">Level-triggered lines are EVENTFD | MASKABLE | AUTOMASKED; edge-triggered ones EVENTFD only.</param>
public sealed record PlatformIrq(bool LevelTriggered = true);
