// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Simulator;

/// <summary>The virtual config space of vfio-pci (vfio_config_do_rw): a virtual copy with per-byte write masks and fix-ups.</summary>
internal sealed partial class VfioPciDriver
{
    private const ushort PciCommandIo = 0x1;
    private const ushort PciCommandMemory = 0x2;
    private const ushort PciCommandMaster = 0x4;
    private const ushort PciCommandIntxDisable = 0x400;
    private const ushort PciStatusCapList = 0x10;
    private const byte CapIdMsi = 0x05;
    private const byte CapIdExpress = 0x10;
    private const byte CapIdMsix = 0x11;

    // The virtual copy ("vconfig", built at open as vfio_config_init does) and which bits user writes may change.
    private byte[]? _config;
    private byte[] _writable = [];
    private int _msiCap = -1;
    private int _expressCap = -1;
    private int _msixCap = -1;

    private uint ConfigSize => _model.IsPciExpress ? 4096u : 256u;

    private ushort Command => BinaryPrimitives.ReadUInt16LittleEndian(_config.AsSpan(0x04));

    /// <summary>Builds the virtual config space from the model; pci_enable_device has turned on memory decoding.</summary>
    private void InitConfig()
    {
        int size = (int)ConfigSize;
        byte[] c = new byte[size];
        byte[] w = new byte[size];
        // Bytes outside the header and every capability are raw pass-through (read/write).
        w.AsSpan(0x40).Fill(0xff);

        W16(c, 0x00, _model.VendorId);
        W16(c, 0x02, _model.DeviceId);
        bool anyBar = false, anyIo = false;
        ulong next32 = 0xfe00_0000, next64 = 0x80_0000_0000, nextIo = 0xc000;
        for (int i = 0; i < 6; i++)
        {
            PciBar? bar = BarAt(i);
            if (bar is null)
            {
                continue;
            }
            int at = 0x10 + (4 * i);
            if (bar.IsIo)
            {
                anyIo = true;
                ulong port = (nextIo + bar.Size - 1) & ~(bar.Size - 1);
                nextIo = port + bar.Size;
                W32(c, at, (uint)port | bar.TypeBits);
                continue;
            }
            anyBar = true;
            if (bar.Is64Bit)
            {
                ulong address = (next64 + bar.Size - 1) & ~(bar.Size - 1);
                next64 = address + bar.Size;
                W32(c, at, (uint)address | bar.TypeBits);
                W32(c, at + 4, (uint)(address >> 32));
            }
            else
            {
                ulong address = (next32 + bar.Size - 1) & ~(bar.Size - 1);
                next32 = address + bar.Size;
                W32(c, at, (uint)address | bar.TypeBits);
            }
        }
        W16(c, 0x04, (ushort)((anyBar ? PciCommandMemory : 0) | (anyIo ? PciCommandIo : 0)));
        w[0x04] = (byte)(PciCommandIo | PciCommandMemory | PciCommandMaster | 0x40); // + parity error response
        w[0x05] = (PciCommandIntxDisable | 0x100) >> 8;                               // + SERR#
        c[0x08] = _model.RevisionId;
        c[0x09] = (byte)_model.ClassCode;
        c[0x0a] = (byte)(_model.ClassCode >> 8);
        c[0x0b] = (byte)(_model.ClassCode >> 16);
        w[0x0c] = 0xff; // cache line size
        w[0x0d] = 0xff; // latency timer
        w.AsSpan(0x10, 24).Fill(0xff);
        W16(c, 0x2c, _model.SubsystemVendorId);
        W16(c, 0x2e, _model.SubsystemId);
        w.AsSpan(0x30, 4).Fill(0xff);
        if (RomBarSize != 0)
        {
            W32(c, 0x30, (uint)((next32 + RomBarSize - 1) & ~(RomBarSize - 1)));
        }
        c[0x3c] = 11;
        w[0x3c] = 0xff;
        c[0x3d] = _model.InterruptPin;

        // Capabilities from 0x40, in the order MSI, PCI Express, MSI-X.
        var caps = new List<(byte Id, int Size)>();
        if (_model.MsiVectors > 0)
        {
            caps.Add((CapIdMsi, 16));
        }
        if (_model.IsPciExpress)
        {
            caps.Add((CapIdExpress, 0x3c));
        }
        if (_model.MsixVectors > 0)
        {
            caps.Add((CapIdMsix, 12));
        }
        int offset = 0x40;
        _msiCap = _expressCap = _msixCap = -1;
        for (int k = 0; k < caps.Count; k++)
        {
            (byte id, int capSize) = caps[k];
            w.AsSpan(offset, capSize).Clear();
            c[offset] = id;
            c[offset + 1] = (byte)(k + 1 < caps.Count ? offset + capSize : 0);
            switch (id)
            {
                case CapIdMsi:
                    _msiCap = offset;
                    int log2 = System.Numerics.BitOperations.Log2((uint)_model.MsiVectors);
                    W16(c, offset + 2, (ushort)(0x80 | (log2 << 1))); // 64-bit address, Multiple Message Capable
                    w[offset + 2] = 0x71;                              // MSI Enable, Multiple Message Enable
                    w[offset + 4] = 0xfc;
                    w.AsSpan(offset + 5, 7).Fill(0xff);                // address low/high
                    w[offset + 12] = 0xff;
                    w[offset + 13] = 0xff;                             // data
                    break;
                case CapIdExpress:
                    _expressCap = offset;
                    W16(c, offset + 2, 0x0002);                        // version 2, endpoint
                    W32(c, offset + 4, _model.SupportsFunctionReset ? 1u << 28 : 0u);
                    w[offset + 8] = 0xff;
                    w[offset + 9] = 0xfd;                              // Device Control, not Phantom Functions
                    break;
                default:
                    _msixCap = offset;
                    W16(c, offset + 2, (ushort)(_model.MsixVectors - 1));
                    W32(c, offset + 4, _model.MsixTableOffset | (uint)_model.MsixBar);
                    W32(c, offset + 8, _model.MsixPbaOffset | (uint)_model.MsixBar);
                    break;
            }
            offset += capSize;
        }
        if (caps.Count > 0)
        {
            c[0x34] = 0x40;
            W16(c, 0x06, PciStatusCapList);
        }
        if (size > 0x100)
        {
            // No extended capability is visible: dword 0x100 reads 0.
            w.AsSpan(0x100, 4).Clear();
        }
        _config = c;
        _writable = w;
    }

    private long ConfigReadWrite(Span<byte> buffer, ulong pos, bool write)
    {
        byte[]? c = _config;
        if (c is null)
        {
            return -EINVAL;
        }
        ulong size = (ulong)c.Length;
        if (pos >= size || pos + (ulong)buffer.Length > size)
        {
            return -EFAULT;
        }
        int start = (int)pos;
        if (!write)
        {
            c.AsSpan(start, buffer.Length).CopyTo(buffer);
            return buffer.Length;
        }
        for (int i = 0; i < buffer.Length; i++)
        {
            int p = start + i;
            c[p] = (byte)((c[p] & ~_writable[p]) | (buffer[i] & _writable[p]));
        }
        for (int dword = start & ~3; dword < start + buffer.Length; dword += 4)
        {
            FixUp(dword);
        }
        return buffer.Length;
    }

    /// <summary>What the kernel does after a write to a virtualized dword.</summary>
    private void FixUp(int dword)
    {
        byte[] c = _config!;
        if (dword == 0x04)
        {
            // Emulated INTx disable: setting masks INTx, clearing unmasks.
            bool disabled = (Command & PciCommandIntxDisable) != 0;
            if (disabled != _virqDisabled)
            {
                _virqDisabled = disabled;
                if (disabled)
                {
                    IntxMask();
                }
                else
                {
                    IntxUnmask();
                }
            }
        }
        else if (dword is >= 0x10 and <= 0x24)
        {
            int i = (dword - 0x10) / 4;
            PciBar? bar = BarAt(i);
            if (bar is not null)
            {
                W32(c, dword, (R32(c, dword) & (uint)~(bar.Size - 1) & bar.AddressMask) | bar.TypeBits);
            }
            else if (i > 0 && BarAt(i - 1) is { Is64Bit: true } lower)
            {
                W32(c, dword, R32(c, dword) & (uint)(~(lower.Size - 1) >> 32));
            }
            else
            {
                W32(c, dword, 0);
            }
        }
        else if (dword == 0x30)
        {
            // vfio_bar_fixup: the ROM BAR keeps its size-aligned address bits and the enable bit; none without a ROM.
            ulong rom = RomBarSize;
            W32(c, dword, rom == 0 ? 0 : R32(c, dword) & ((uint)~(rom - 1) | 1));
        }
        else if (_msiCap >= 0 && dword == _msiCap)
        {
            ushort flags = R16(c, _msiCap + 2);
            if (_irqType != IrqType.Msi)
            {
                flags &= unchecked((ushort)~1);
            }
            if (((flags >> 4) & 7) > _msiQmax)
            {
                flags = (ushort)((flags & ~0x70) | (_msiQmax << 4));
            }
            W16(c, _msiCap + 2, flags);
        }
        else if (_expressCap >= 0 && dword == _expressCap + 8)
        {
            ushort control = R16(c, dword);
            if ((control & 0x8000) != 0)
            {
                // Initiate FLR: virtualized, reads back 0, resets the function if it can.
                W16(c, dword, (ushort)(control & 0x7fff));
                if (_model.SupportsFunctionReset)
                {
                    _ = Reset();
                }
            }
        }
    }

    private void SetMsixEnableBit(bool enabled)
    {
        if (_config is not null && _msixCap >= 0)
        {
            ushort control = R16(_config, _msixCap + 2);
            W16(_config, _msixCap + 2, enabled ? (ushort)(control | 0x8000) : (ushort)(control & 0x7fff));
        }
    }

    private static ushort R16(byte[] c, int at) => BinaryPrimitives.ReadUInt16LittleEndian(c.AsSpan(at));

    private static uint R32(byte[] c, int at) => BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(at));

    private static void W16(byte[] c, int at, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(c.AsSpan(at), value);

    private static void W32(byte[] c, int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(c.AsSpan(at), value);
}
