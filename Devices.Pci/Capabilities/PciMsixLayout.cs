// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// Where a device's MSI-X structures are, from its MSI-X capability: the vector table (16 bytes per vector) and the
/// pending-bit array (one bit per vector, in 64-bit words), each in a BAR at an offset.
/// </summary>
/// <param name="CapabilityOffset">The offset of the MSI-X capability in configuration space.</param>
/// <param name="VectorCount">The table size, 1–2048 vectors.</param>
/// <param name="TableBar">The BAR holding the table (BIR, 0–5).</param>
/// <param name="TableOffset">The table's offset in <paramref name="TableBar"/> (8-byte aligned).</param>
/// <param name="PbaBar">The BAR holding the pending-bit array.</param>
/// <param name="PbaOffset">The pending-bit array's offset in <paramref name="PbaBar"/>.</param>
public readonly record struct PciMsixLayout(int CapabilityOffset, int VectorCount, int TableBar, uint TableOffset, int PbaBar, uint PbaOffset)
{
    /// <summary>The offset of the message control register (16 bits) from the capability.</summary>
    internal const int ControlRegister = 2;

    /// <summary>The offset of the table offset/BIR register (32 bits) from the capability.</summary>
    internal const int TableRegister = 4;

    /// <summary>The offset of the PBA offset/BIR register (32 bits) from the capability.</summary>
    internal const int PbaRegister = 8;

    /// <summary>The bytes of one table entry.</summary>
    public const int EntrySize = 16;

    /// <summary>The table's size in bytes.</summary>
    public ulong TableSize => (ulong)VectorCount * EntrySize;

    /// <summary>The pending-bit array's size in bytes (whole 64-bit words).</summary>
    public ulong PbaSize => (ulong)((VectorCount + 63) / 64) * 8;

    /// <summary>Decodes the capability's registers.</summary>
    /// <param name="capabilityOffset">The capability's offset.</param>
    /// <param name="control">The message control register.</param>
    /// <param name="table">The table offset/BIR register.</param>
    /// <param name="pba">The PBA offset/BIR register.</param>
    /// <param name="deviceName">The device, for the error message.</param>
    /// <returns>The layout.</returns>
    /// <exception cref="VfioException">A BIR names a reserved BAR (6 or 7).</exception>
    internal static PciMsixLayout Decode(int capabilityOffset, ushort control, uint table, uint pba, string deviceName)
    {
        int tableBar = (int)(table & 7);
        int pbaBar = (int)(pba & 7);
        if (tableBar > 5 || pbaBar > 5)
        {
            throw new VfioException("PCI capability walk", deviceName,
                string.Create(CultureInfo.InvariantCulture, $"the MSI-X capability at 0x{capabilityOffset:X2} places its table in BAR {tableBar} and its pending-bit array in BAR {pbaBar}; only BARs 0–5 exist"),
                "The device's configuration space is inconsistent: reset it; if that persists its MSI-X cannot be used (use MSI or INTx).");
        }
        return new PciMsixLayout(capabilityOffset, (control & 0x7FF) + 1, tableBar, table & ~7u, pbaBar, pba & ~7u);
    }
}
