// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// The config space a guest sees of an assigned <see cref="VfioPciDevice"/>, for a .NET VMM that forwards the guest's
/// config reads and writes here. Most of it passes through to the kernel (which applies vfio-pci's own
/// virtualization); the parts a VMM must own are emulated:
/// <list type="bullet">
/// <item>the six BARs and the ROM BAR: the guest's addresses and the sizing protocol (write all ones, read back the
/// size mask), kept here and never written to the device, so the VMM knows where the guest placed each BAR;</item>
/// <item>the MSI capability: the guest's address, data and mask bits, and its control word, whose enable bit and
/// Multiple Message Enable turn into <see cref="PciMsi"/> vector changes;</item>
/// <item>the MSI-X capability's control word: MSI-X Enable turns into <see cref="PciMsix"/> enabled with no vector,
/// and the VMM's table emulation adds and removes vectors with <see cref="SetMsixVectorInUse"/>;</item>
/// <item>the multifunction bit of the header type, cleared unless <see cref="Multifunction"/> is set (the guest's
/// slot is not the host's);</item>
/// <item>the command register's I/O, memory and bus-master bits are passed through and also recorded, so the VMM knows
/// when the guest's BARs decode.</item>
/// </list>
/// Leaving MSI or MSI-X (and at creation) arms INTx when the device has a pin, as a freshly reset device uses INTx.
/// </summary>
/// <remarks>Accesses are 1, 2 or 4 bytes, naturally aligned, as a guest's config cycles are. Not thread-safe: a VMM
/// serialises a device's config accesses.</remarks>
public sealed class PciConfigVirtualizer
{
    private const int HeaderSize = 256;
    private const int CommandOffset = 0x04;
    private const int HeaderTypeOffset = 0x0e;
    private const int Bar0Offset = 0x10;
    private const int RomOffset = 0x30;
    private const byte MultifunctionBit = 0x80;
    private const ushort CommandDecodeMask = 0x0007; // I/O space, memory space, bus master
    private const int MsixCapabilityLength = 12;
    private const byte MsixEnableBit = 0x80;
    private const byte MsixFunctionMaskBit = 0x40;

    private readonly byte[] _config = new byte[HeaderSize];
    private readonly bool[] _emulated = new bool[HeaderSize];
    private readonly uint[] _barMasks = new uint[6];
    private readonly uint _romMask;
    private readonly int _configSize;
    private readonly PciMsiCapability? _msi;
    private readonly PciMsixLayout? _msix;
    private readonly InterruptEvent? _intxResample;
    private readonly bool[] _msixInUse;

    /// <summary>Reads the device's config space and starts emulating it; arms INTx when the device has a pin.</summary>
    /// <param name="device">The device; its interrupts are driven by this virtualizer from now on.</param>
    /// <param name="intxResample">An unmask (resample) eventfd for INTx, e.g. a KVM irqfd's; null for INTx's own.</param>
    /// <exception cref="VfioException">The kernel refused a config read or the INTx setup.</exception>
    public PciConfigVirtualizer(VfioPciDevice device, InterruptEvent? intxResample = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        Device = device;
        _intxResample = intxResample;
        VfioDevice vfio = device.Device;
        _configSize = device.ConfigSize;
        device.ReadConfig(0, _config);

        for (int bar = 0; bar < 6; bar++)
        {
            _barMasks[bar] = BarMask(vfio, bar);
        }
        for (int i = Bar0Offset; i < Bar0Offset + 24; i++)
        {
            _emulated[i] = true;
        }
        Array.Clear(_config, Bar0Offset, 24);
        for (int bar = 0; bar < 6; bar++)
        {
            // The type bits (memory type, prefetchable, I/O) stay as the device has them; the address starts at 0.
            uint original = device.ReadConfig32(Bar0Offset + (4 * bar));
            Write32(_config, Bar0Offset + (4 * bar), _barMasks[bar] == 0 ? 0 : original & TypeBits(original));
        }

        ulong romSize = vfio.GetRegion(VfioPciRegion.Rom).Size;
        _romMask = romSize == 0 ? 0 : ~(uint)(RoundUpToPowerOf2(romSize) - 1) & 0xfffff800 | 1;
        Emulate(RomOffset, 4);
        Write32(_config, RomOffset, 0);

        _msi = device.Msi.Capability;
        if (_msi is { } msi)
        {
            Emulate(msi.Offset, msi.Length);
            // The guest starts with MSI disabled and one vector enabled.
            Write16(_config, msi.Offset + 2, (ushort)(msi.Control & ~(PciMsiCapability.EnableBit | PciMsiCapability.MultipleMessageEnableMask)));
        }
        _msix = device.Msix.Layout;
        _msixInUse = new bool[_msix?.VectorCount ?? 0];
        if (_msix is { } msix)
        {
            Emulate(msix.CapabilityOffset, MsixCapabilityLength);
            // The guest starts with MSI-X disabled and unmasked (bits 15 and 14 of the control word).
            _config[msix.CapabilityOffset + 3] &= 0x3f;
        }
        _emulated[HeaderTypeOffset] = true;
        EnterIntx();
    }

    /// <summary>The device.</summary>
    public VfioPciDevice Device { get; }

    /// <summary>Whether the guest sees the multifunction bit of the header type (false: cleared, the default).</summary>
    public bool Multifunction { get; set; }

    /// <summary>The size of the config space the guest sees (256, or 4096 for PCI Express).</summary>
    public int ConfigSize => _configSize;

    /// <summary>The command register's decode bits as the guest last wrote them (bit 0 I/O, 1 memory, 2 bus master).</summary>
    public ushort GuestCommand { get; private set; }

    /// <summary>Whether the guest enabled MSI-X's Function Mask (every vector masked).</summary>
    public bool MsixFunctionMasked => _msix is { } m && (_config[m.CapabilityOffset + 3] & MsixFunctionMaskBit) != 0;

    /// <summary>Raised after the device's interrupt mode or its vectors changed because of a guest write (read
    /// <see cref="VfioPciDevice.InterruptMode"/> and the vectors to rewire irqfds).</summary>
    public event EventHandler? InterruptsChanged;

    /// <summary>Reads <paramref name="length"/> bytes of config space as the guest sees them.</summary>
    /// <param name="offset">The offset, aligned to <paramref name="length"/>.</param>
    /// <param name="length">1, 2 or 4.</param>
    /// <returns>The value (little-endian bytes as an integer).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A bad length, a misaligned offset, or beyond the config space.</exception>
    /// <exception cref="VfioException">The kernel refused the read.</exception>
    public uint Read(int offset, int length)
    {
        CheckAccess(offset, length);
        Span<byte> bytes = stackalloc byte[4];
        bytes = bytes[..length];
        if (!AllEmulated(offset, length))
        {
            Device.Device.ReadRegion(VfioPciRegion.Config, (ulong)offset, bytes);
        }
        for (int i = 0; i < length; i++)
        {
            int at = offset + i;
            if (at < HeaderSize && _emulated[at])
            {
                bytes[i] = at == HeaderTypeOffset ? HeaderType() : _config[at];
            }
        }
        return length switch
        {
            1 => bytes[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            _ => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
        };
    }

    /// <summary>Writes <paramref name="length"/> bytes of config space as the guest does: emulated bytes change the
    /// emulation (and MSI/MSI-X enable bits the device's interrupts), the others go to the kernel.</summary>
    /// <param name="offset">The offset, aligned to <paramref name="length"/>.</param>
    /// <param name="length">1, 2 or 4.</param>
    /// <param name="value">The value.</param>
    /// <exception cref="ArgumentOutOfRangeException">A bad length, a misaligned offset, or beyond the config space.</exception>
    /// <exception cref="VfioException">The kernel refused the write or an interrupt change.</exception>
    public void Write(int offset, int length, uint value)
    {
        CheckAccess(offset, length);
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        bytes = bytes[..length];
        PassThrough(offset, bytes);
        if (offset >= HeaderSize)
        {
            return;
        }
        if (Overlaps(offset, length, CommandOffset, 2))
        {
            GuestCommand = (ushort)(Device.Device.ReadRegion16(VfioPciRegion.Config, CommandOffset) & CommandDecodeMask);
        }
        if (Overlaps(offset, length, Bar0Offset, 24) || Overlaps(offset, length, RomOffset, 4))
        {
            WriteBars(offset, bytes);
        }
        if (_msi is { } msi && Overlaps(offset, length, msi.Offset, msi.Length))
        {
            WriteMsi(msi, offset, bytes);
        }
        if (_msix is { } msix && Overlaps(offset, length, msix.CapabilityOffset, MsixCapabilityLength))
        {
            WriteMsix(msix, offset, bytes);
        }
    }

    /// <summary>The address the guest programmed into BAR <paramref name="bar"/> (a 64-bit BAR's both halves; 0 for an
    /// unimplemented BAR or the upper half of a 64-bit one).</summary>
    /// <param name="bar">The BAR, 0–5.</param>
    /// <returns>The guest address.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bar"/> is not 0–5.</exception>
    public ulong GetBarAddress(int bar)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)bar, 5u, nameof(bar));
        uint low = Read32(_config, Bar0Offset + (4 * bar));
        if (_barMasks[bar] == 0)
        {
            return 0;
        }
        if ((low & 1) != 0)
        {
            return low & ~3u;
        }
        ulong address = low & ~0xfu;
        if ((low & 0x6) == 0x4 && bar < 5)
        {
            address |= (ulong)Read32(_config, Bar0Offset + (4 * (bar + 1))) << 32;
        }
        return address;
    }

    /// <summary>The ROM BAR's guest address and whether the guest enabled it.</summary>
    /// <param name="enabled">The ROM BAR's enable bit.</param>
    /// <returns>The guest address (0 when the device has no ROM).</returns>
    public uint GetRomAddress(out bool enabled)
    {
        uint rom = Read32(_config, RomOffset);
        enabled = (rom & 1) != 0;
        return rom & 0xfffff800;
    }

    /// <summary>The MSI message the guest programmed for <paramref name="vector"/> (its vector number in the data's low
    /// bits when several are enabled).</summary>
    /// <param name="vector">The vector.</param>
    /// <returns>The message.</returns>
    /// <exception cref="InvalidOperationException">The device has no MSI capability.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vector"/> is beyond the vectors the guest enabled.</exception>
    public PciMsiMessage GetMsiMessage(int vector)
    {
        PciMsiCapability msi = _msi ?? throw new InvalidOperationException($"{Device.Name} has no MSI capability.");
        var guest = new PciMsiCapability(msi.Offset, Read16(_config, msi.Offset + 2));
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)vector, (uint)guest.EnabledVectors, nameof(vector));
        ulong address = Read32(_config, msi.Offset + 4);
        if (msi.Is64Bit)
        {
            address |= (ulong)Read32(_config, msi.Offset + 8) << 32;
        }
        uint data = Read16(_config, msi.DataOffset);
        uint low = (uint)guest.EnabledVectors - 1;
        return new PciMsiMessage(address, (data & ~low) | ((uint)vector & low));
    }

    /// <summary>
    /// The VMM's MSI-X table emulation says the guest started (<paramref name="inUse"/>) or stopped using
    /// <paramref name="vector"/> (it unmasked or masked the entry): the device's MSI-X grows to include the vector and
    /// wires it, or masks it. Vectors below it that the guest does not use stay masked.
    /// </summary>
    /// <param name="vector">The vector.</param>
    /// <param name="inUse">True when the guest uses it.</param>
    /// <exception cref="InvalidOperationException">The guest has not enabled MSI-X.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vector"/> is beyond the table.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void SetMsixVectorInUse(int vector, bool inUse)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)vector, (uint)_msixInUse.Length, nameof(vector));
        PciMsix msix = Device.Msix;
        if (!msix.IsEnabled)
        {
            throw new InvalidOperationException($"{Device.Name}: the guest has not enabled MSI-X; vectors are used after MSI-X Enable.");
        }
        _msixInUse[vector] = inUse;
        int count = msix.VectorCount;
        if (inUse && vector >= count)
        {
            msix.SetVectorCount(vector + 1);
            for (int i = count; i < vector; i++)
            {
                msix.Mask(i);
            }
        }
        else if (vector < count)
        {
            if (inUse)
            {
                msix.Unmask(vector);
            }
            else
            {
                msix.Mask(vector);
            }
        }
        InterruptsChanged?.Invoke(this, EventArgs.Empty);
    }

    private static uint BarMask(VfioDevice vfio, int bar)
    {
        ulong size = vfio.GetRegion(VfioPciRegion.Bar0 + bar).Size;
        if (size == 0)
        {
            return 0;
        }
        ulong mask = ~(RoundUpToPowerOf2(size) - 1);
        return (uint)mask;
    }

    /// <summary>The low bits of a BAR the guest cannot change: bit 0 for I/O; bits 3:0 for memory.</summary>
    private static uint TypeBits(uint bar) => (bar & 1) != 0 ? 0x3u : 0xfu;

    private static ulong RoundUpToPowerOf2(ulong value) => System.Numerics.BitOperations.RoundUpToPowerOf2(value);

    private static bool Overlaps(int offset, int length, int start, int size) => offset < start + size && start < offset + length;

    private static uint Read32(byte[] config, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(config.AsSpan(offset));

    private static ushort Read16(byte[] config, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(config.AsSpan(offset));

    private static void Write32(byte[] config, int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(config.AsSpan(offset), value);

    private static void Write16(byte[] config, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(config.AsSpan(offset), value);

    private void Emulate(int offset, int length) => _emulated.AsSpan(offset, length).Fill(true);

    private byte HeaderType()
    {
        byte type = _config[HeaderTypeOffset];
        return Multifunction ? (byte)(type | MultifunctionBit) : (byte)(type & ~MultifunctionBit);
    }

    private void CheckAccess(int offset, int length)
    {
        if (length is not (1 or 2 or 4))
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "A config access is 1, 2 or 4 bytes.");
        }
        if (offset < 0 || offset % length != 0 || offset + length > _configSize)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{Device.Name}: a {length}-byte config access must be aligned to {length} and end within the {_configSize}-byte config space.");
        }
    }

    private bool AllEmulated(int offset, int length)
    {
        if (offset + length > HeaderSize)
        {
            return false;
        }
        return !_emulated.AsSpan(offset, length).Contains(false);
    }

    /// <summary>Writes the bytes that are not emulated to the device, each contiguous run in one write.</summary>
    private void PassThrough(int offset, ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            if (offset + i < HeaderSize && _emulated[offset + i])
            {
                i++;
                continue;
            }
            int start = i;
            while (i < bytes.Length && !(offset + i < HeaderSize && _emulated[offset + i]))
            {
                i++;
            }
            Device.Device.WriteRegion(VfioPciRegion.Config, (ulong)(offset + start), bytes[start..i]);
        }
    }

    private void WriteBars(int offset, ReadOnlySpan<byte> bytes)
    {
        for (int i = 0; i < bytes.Length; i++)
        {
            int at = offset + i;
            if (at >= Bar0Offset && at < Bar0Offset + 24)
            {
                int bar = (at - Bar0Offset) / 4;
                _config[at] = Masked(_config[at], bytes[i], BarByteMask(bar, at % 4));
            }
            else if (at >= RomOffset && at < RomOffset + 4)
            {
                _config[at] = Masked(_config[at], bytes[i], (byte)(_romMask >> (8 * (at - RomOffset))));
            }
        }
    }

    /// <summary>The writable bits of byte <paramref name="index"/> of BAR <paramref name="bar"/>: the size mask, less
    /// the type bits; the upper half of a 64-bit BAR takes the upper half of the lower one's mask.</summary>
    private byte BarByteMask(int bar, int index)
    {
        uint mask = _barMasks[bar];
        if (mask == 0 && bar > 0 && IsMemory64(bar - 1) && _barMasks[bar - 1] != 0)
        {
            ulong size = Device.Device.GetRegion(VfioPciRegion.Bar0 + bar - 1).Size;
            mask = (uint)(~(RoundUpToPowerOf2(size) - 1) >> 32);
            return (byte)(mask >> (8 * index));
        }
        uint low = Read32(_config, Bar0Offset + (4 * bar));
        mask &= ~TypeBits(low);
        return (byte)(mask >> (8 * index));
    }

    private bool IsMemory64(int bar) => (Read32(_config, Bar0Offset + (4 * bar)) & 0x7) == 0x4;

    private static byte Masked(byte old, byte value, byte writable) => (byte)((old & ~writable) | (value & writable));

    private void WriteMsi(PciMsiCapability msi, int offset, ReadOnlySpan<byte> bytes)
    {
        int control = msi.Offset + 2;
        bool wasEnabled = (Read16(_config, control) & PciMsiCapability.EnableBit) != 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            int at = offset + i;
            if (at < msi.Offset + 2 || at >= msi.Offset + msi.Length)
            {
                continue; // the capability id and next pointer are read-only
            }
            byte writable = at == control ? (byte)0x71 : at == control + 1 ? (byte)0 : (byte)0xff;
            if (msi.HasPerVectorMasking && at >= msi.Offset + msi.Length - 4)
            {
                writable = 0; // the pending bits are the device's
            }
            _config[at] = Masked(_config[at], bytes[i], writable);
        }
        var guest = new PciMsiCapability(msi.Offset, Read16(_config, control));
        if (guest.IsEnabled == wasEnabled)
        {
            return;
        }
        if (guest.IsEnabled)
        {
            DisableInterrupts();
            Device.Msi.Enable(Math.Min(guest.EnabledVectors, msi.MaxVectors));
        }
        else
        {
            Device.Msi.Disable();
            EnterIntx();
        }
        InterruptsChanged?.Invoke(this, EventArgs.Empty);
    }

    private void WriteMsix(PciMsixLayout msix, int offset, ReadOnlySpan<byte> bytes)
    {
        int control = msix.CapabilityOffset + 3; // the control word's high byte: Enable (bit 7), Function Mask (bit 6)
        bool wasEnabled = (_config[control] & MsixEnableBit) != 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            if (offset + i == control)
            {
                _config[control] = Masked(_config[control], bytes[i], MsixEnableBit | MsixFunctionMaskBit);
            }
        }
        bool enabled = (_config[control] & MsixEnableBit) != 0;
        if (enabled == wasEnabled)
        {
            return;
        }
        if (enabled)
        {
            DisableInterrupts();
            Array.Clear(_msixInUse);
            Device.Msix.Enable(0);
        }
        else
        {
            Device.Msix.Disable();
            EnterIntx();
        }
        InterruptsChanged?.Invoke(this, EventArgs.Empty);
    }

    private void EnterIntx()
    {
        if (Device.Intx.IsAvailable && Device.InterruptMode == PciInterruptMode.None)
        {
            Device.Intx.Enable(_intxResample);
        }
    }

    /// <summary>Before entering MSI or MSI-X: whatever is enabled goes (INTx; the other message kind if a guest
    /// enables both), as the kernel allows one at a time.</summary>
    private void DisableInterrupts()
    {
        Device.Intx.Disable();
        Device.Msi.Disable();
        Device.Msix.Disable();
    }
}
