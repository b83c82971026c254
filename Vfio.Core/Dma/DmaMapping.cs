// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>Which way a device may move data through a mapping.</summary>
[Flags]
public enum DmaAccess
{
    /// <summary>The device reads the memory (data flows to the device).</summary>
    Read = 1,

    /// <summary>The device writes the memory (data flows from the device).</summary>
    Write = 2,

    /// <summary>Both.</summary>
    ReadWrite = Read | Write,
}

/// <summary>What a mapping's host memory is.</summary>
public enum DmaSectionKind
{
    /// <summary>Ordinary memory (a DMA buffer, guest RAM): a failure to map it is an error.</summary>
    Ram,

    /// <summary>Another device's memory (a BAR mapped for peer-to-peer DMA, QEMU's <c>ram_device</c>): an IOMMU that
    /// cannot map it skips it with a warning, as QEMU does.</summary>
    DeviceMemory,
}

/// <summary>One mapping of a <see cref="DmaSpace"/>: <see cref="Size"/> bytes of host memory at
/// <see cref="HostAddress"/> that devices of the space reach at <see cref="Iova"/>.</summary>
/// <param name="Iova">The device-visible address.</param>
/// <param name="Size">The length in bytes, a multiple of the space's page size.</param>
/// <param name="HostAddress">The process address of the memory.</param>
/// <param name="Access">Which way devices may move data.</param>
/// <param name="Kind">What the memory is.</param>
public readonly record struct DmaMapping(ulong Iova, ulong Size, nint HostAddress, DmaAccess Access, DmaSectionKind Kind)
{
    /// <summary>The mapping's IOVA range.</summary>
    public IovaRange Range => IovaRange.FromStartSize(Iova, Size);

    // The generated printer would read Range, which throws for the empty default mapping (AddSection's "skipped").
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"Iova = 0x{Iova:x}, Size = {Size}, HostAddress = 0x{HostAddress:x}, Access = {Access}, Kind = {Kind}");
        if (Size != 0)
        {
            builder.Append(", Range = ").Append(Range.ToString());
        }
        return true;
    }
}
