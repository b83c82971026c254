// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// A platform device for exercising a platform driver's interrupt handling: three interrupt lines (0 and 1
/// level-triggered, 2 edge-triggered) that software raises and lowers through registers, a page-sized mappable
/// register region, a small unmappable scratch region and an I/O-port resource.
/// </summary>
/// <remarks>
/// Region 0 (0x1000 bytes, read/write, mmap-able), 32-bit registers: <see cref="IdRegister"/> (reads
/// <see cref="Id"/>), <see cref="AssertRegister"/> (write: each set bit asserts that line; an edge line pulses),
/// <see cref="DeassertRegister"/> (write: each set bit lowers that level line), <see cref="LevelRegister"/> (read: the
/// asserted level lines) and a scratch register at <see cref="ScratchRegister"/>; other offsets read 0 and ignore
/// writes. Region 1 (0x100 bytes, read/write, not mmap-able) is plain memory of any access width. Region 2 is an 8-byte
/// I/O-port resource, which vfio-platform does not let user space access.
/// </remarks>
public sealed class PlatformTestDevice : EmulatedPlatformDevice
{
    /// <summary>What <see cref="IdRegister"/> reads ("PLAT").</summary>
    public const uint Id = 0x54414c50;

    /// <summary>The identification register's offset in region 0.</summary>
    public const ulong IdRegister = 0x00;

    /// <summary>The register whose set bits assert lines.</summary>
    public const ulong AssertRegister = 0x04;

    /// <summary>The register whose set bits lower level lines.</summary>
    public const ulong DeassertRegister = 0x08;

    /// <summary>The register that reads the asserted level lines.</summary>
    public const ulong LevelRegister = 0x0c;

    /// <summary>A read/write scratch register.</summary>
    public const ulong ScratchRegister = 0x10;

    private readonly PlatformRegion[] _regions = [new PlatformRegion(0x1000, Mappable: true), new PlatformRegion(0x100), new PlatformRegion(8, IoPort: true)];
    private readonly PlatformIrq[] _irqs = [new PlatformIrq(LevelTriggered: true), new PlatformIrq(LevelTriggered: true), new PlatformIrq(LevelTriggered: false)];
    private readonly byte[] _memory = new byte[0x100];
    private uint _level, _scratch;

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformRegion> Regions => _regions;

    /// <inheritdoc/>
    public override IReadOnlyList<PlatformIrq> Irqs => _irqs;

    /// <inheritdoc/>
    protected override ulong ReadRegister(int region, ulong offset, int width)
    {
        if (region == 1)
        {
            ulong value = 0;
            for (int i = width - 1; i >= 0; i--)
            {
                value = (value << 8) | _memory[(int)offset + i];
            }
            return value;
        }
        if (width != 4)
        {
            return 0;
        }
        return offset switch
        {
            IdRegister => Id,
            LevelRegister => _level,
            ScratchRegister => _scratch,
            _ => 0,
        };
    }

    /// <inheritdoc/>
    protected override void WriteRegister(int region, ulong offset, int width, ulong value)
    {
        if (region == 1)
        {
            for (int i = 0; i < width; i++)
            {
                _memory[(int)offset + i] = (byte)(value >> (8 * i));
            }
            return;
        }
        if (width != 4)
        {
            return;
        }
        switch (offset)
        {
            case AssertRegister:
                for (int line = 0; line < _irqs.Length; line++)
                {
                    if ((value & (1UL << line)) == 0)
                    {
                        continue;
                    }
                    SetIrq(line, true);
                    if (_irqs[line].LevelTriggered)
                    {
                        _level |= 1u << line;
                    }
                    else
                    {
                        SetIrq(line, false);
                    }
                }
                break;
            case DeassertRegister:
                for (int line = 0; line < _irqs.Length; line++)
                {
                    if ((value & (1UL << line)) != 0 && _irqs[line].LevelTriggered)
                    {
                        _level &= ~(1u << line);
                        SetIrq(line, false);
                    }
                }
                break;
            case ScratchRegister:
                _scratch = (uint)value;
                break;
        }
    }

    /// <inheritdoc/>
    protected override void OnReset()
    {
        for (int line = 0; line < _irqs.Length; line++)
        {
            SetIrq(line, false);
        }
        _level = 0;
        _scratch = 0;
        Array.Clear(_memory);
    }
}
