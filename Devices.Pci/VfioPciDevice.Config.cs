// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

public sealed partial class VfioPciDevice
{
    /// <summary>Reads one byte of configuration space (through vfio-pci's virtualised view).</summary>
    /// <param name="offset">The offset, below <see cref="ConfigSize"/>.</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public byte ReadConfig8(int offset) => Device.ReadRegion8(VfioPciRegion.Config, ConfigOffset(offset, 1));

    /// <summary>Reads a little-endian 16-bit value of configuration space.</summary>
    /// <param name="offset">The offset (2-byte aligned).</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space, or not aligned.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public ushort ReadConfig16(int offset) => Device.ReadRegion16(VfioPciRegion.Config, ConfigOffset(offset, 2));

    /// <summary>Reads a little-endian 32-bit value of configuration space.</summary>
    /// <param name="offset">The offset (4-byte aligned).</param>
    /// <returns>The value.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space, or not aligned.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public uint ReadConfig32(int offset) => Device.ReadRegion32(VfioPciRegion.Config, ConfigOffset(offset, 4));

    /// <summary>Reads <paramref name="destination"/>.Length bytes of configuration space from <paramref name="offset"/>.</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="destination">Where the bytes go.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the configuration space.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void ReadConfig(int offset, Span<byte> destination)
        => Device.ReadRegion(VfioPciRegion.Config, ConfigOffset(offset, destination.Length, alignment: 1), destination);

    /// <summary>Writes one byte of configuration space (vfio-pci lets through, or emulates, what it allows).</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void WriteConfig8(int offset, byte value) => Device.WriteRegion8(VfioPciRegion.Config, ConfigOffset(offset, 1), value);

    /// <summary>Writes a little-endian 16-bit value of configuration space.</summary>
    /// <param name="offset">The offset (2-byte aligned).</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space, or not aligned.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void WriteConfig16(int offset, ushort value) => Device.WriteRegion16(VfioPciRegion.Config, ConfigOffset(offset, 2), value);

    /// <summary>Writes a little-endian 32-bit value of configuration space.</summary>
    /// <param name="offset">The offset (4-byte aligned).</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">The access is not inside the configuration space, or not aligned.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void WriteConfig32(int offset, uint value) => Device.WriteRegion32(VfioPciRegion.Config, ConfigOffset(offset, 4), value);

    /// <summary>Writes <paramref name="source"/> to configuration space at <paramref name="offset"/>.</summary>
    /// <param name="offset">The offset.</param>
    /// <param name="source">The bytes.</param>
    /// <exception cref="ArgumentOutOfRangeException">The range is not inside the configuration space.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void WriteConfig(int offset, ReadOnlySpan<byte> source)
        => Device.WriteRegion(VfioPciRegion.Config, ConfigOffset(offset, source.Length, alignment: 1), source);

    /// <summary>Reads the command register.</summary>
    /// <returns>Its bits.</returns>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public PciCommand ReadCommand() => (PciCommand)ReadConfig16(PciConfigRegister.Command);

    /// <summary>Writes the command register.</summary>
    /// <param name="command">The bits.</param>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void WriteCommand(PciCommand command) => WriteConfig16(PciConfigRegister.Command, (ushort)command);

    /// <summary>Sets <paramref name="set"/> and clears <paramref name="clear"/> in the command register (read, modify,
    /// write; the write is skipped when nothing changes).</summary>
    /// <param name="set">The bits to set.</param>
    /// <param name="clear">The bits to clear.</param>
    /// <returns>The register's value as written.</returns>
    /// <exception cref="ArgumentException">A bit is both set and cleared.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public PciCommand UpdateCommand(PciCommand set, PciCommand clear)
    {
        if ((set & clear) != 0)
        {
            throw new ArgumentException($"{Name}: the command bits {set & clear} are both set and cleared; pass each bit in one of the two masks.", nameof(clear));
        }
        PciCommand old = ReadCommand();
        PciCommand value = (old | set) & ~clear;
        if (value != old)
        {
            WriteCommand(value);
        }
        return value;
    }

    /// <summary>Lets the device master the bus (DMA, MSI/MSI-X writes), or stops it.</summary>
    /// <param name="enabled">True to set <see cref="PciCommand.BusMaster"/>, false to clear it.</param>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void SetBusMaster(bool enabled) => SetCommandBit(PciCommand.BusMaster, enabled);

    /// <summary>Enables or disables the device's memory decoding (its memory BARs).</summary>
    /// <param name="enabled">True to set <see cref="PciCommand.MemorySpace"/>, false to clear it.</param>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void SetMemorySpace(bool enabled) => SetCommandBit(PciCommand.MemorySpace, enabled);

    /// <summary>Enables or disables the device's I/O decoding (its I/O BARs).</summary>
    /// <param name="enabled">True to set <see cref="PciCommand.IoSpace"/>, false to clear it.</param>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void SetIoSpace(bool enabled) => SetCommandBit(PciCommand.IoSpace, enabled);

    /// <summary>Disables the legacy INTx line (or enables it again).</summary>
    /// <param name="disabled">True to set <see cref="PciCommand.InterruptDisable"/>, false to clear it.</param>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void SetIntxDisabled(bool disabled) => SetCommandBit(PciCommand.InterruptDisable, disabled);

    /// <summary>Reads the status register.</summary>
    /// <returns>Its bits.</returns>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public PciStatus ReadStatus() => (PciStatus)ReadConfig16(PciConfigRegister.Status);

    /// <summary>Clears write-one-to-clear error bits of the status register.</summary>
    /// <param name="bits">The bits to clear (only the error bits, 15:8, are write-one-to-clear).</param>
    /// <exception cref="ArgumentException"><paramref name="bits"/> holds a bit that is not write-one-to-clear.</exception>
    /// <exception cref="VfioException">The kernel refused the access.</exception>
    public void ClearStatus(PciStatus bits)
    {
        const PciStatus ErrorBits = PciStatus.MasterDataParityError | PciStatus.SignaledTargetAbort | PciStatus.ReceivedTargetAbort
            | PciStatus.ReceivedMasterAbort | PciStatus.SignaledSystemError | PciStatus.DetectedParityError;
        if ((bits & ~ErrorBits) != 0)
        {
            throw new ArgumentException($"{Name}: status bits {bits & ~ErrorBits} are read-only; only the error bits ({ErrorBits}) are cleared by writing one.", nameof(bits));
        }
        WriteConfig16(PciConfigRegister.Status, (ushort)bits);
    }

    private void SetCommandBit(PciCommand bit, bool on) => UpdateCommand(on ? bit : PciCommand.None, on ? PciCommand.None : bit);

    /// <summary>Checks a configuration access and returns its region offset.</summary>
    private ulong ConfigOffset(int offset, int length, int alignment = 0)
    {
        ThrowIfDisposed();
        if (offset < 0 || length < 0 || offset > ConfigSize - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{Name}: a {length}-byte configuration access at 0x{offset:X} is outside its {ConfigSize} bytes of configuration space; use an offset below 0x{ConfigSize - length + 1:X}.");
        }
        int align = alignment == 0 ? length : alignment;
        if ((offset & (align - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{Name}: a {length}-byte configuration access at 0x{offset:X} is not aligned; PCI configuration registers are accessed at multiples of their size.");
        }
        return (ulong)offset;
    }
}
