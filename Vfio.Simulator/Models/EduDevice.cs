// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>
/// QEMU's educational PCI device (<c>hw/misc/edu.c</c>, <c>-device edu</c>), register for register: 1234:11e8,
/// BAR0 1 MiB of registers, a factorial unit, an interrupt status register, and a DMA engine with a 4 KiB buffer
/// at device address 0x40000. Interrupts: INTx (pin A) and one MSI vector; no MSI-X; conventional PCI (no ERR).
/// </summary>
/// <remarks>
/// <para>Registers (BAR0; accesses below 0x80 must be 32-bit, from 0x80 32- or 64-bit; other widths read all-ones
/// and are ignored on write, as in edu.c): 0x00 identification <c>0x010000ed</c>; 0x04 liveness (reads the bitwise
/// NOT of the last write); 0x08 factorial (write n; read n! once status bit 0 clears); 0x20 status (bit 0 computing,
/// bit 7 raise interrupt 0x1 when the factorial is done); 0x24 interrupt status; 0x60 raise interrupt (ORed into
/// 0x24); 0x64 acknowledge (cleared from 0x24); 0x80 DMA source, 0x88 destination, 0x90 count, 0x98 command (bit 0
/// start/busy, bit 1 direction: 0 = RAM to device, 1 = device to RAM, bit 2 raise interrupt 0x100 when done).</para>
/// <para>Interrupts go to MSI when user space enabled MSI, otherwise to the INTx line, which stays asserted while
/// the interrupt status is non-zero. A DMA completes <see cref="DmaDelay"/> after it starts (edu.c: 100 ms of
/// virtual time); the address is clamped to the DMA mask (28 bits by default, edu.c's <c>dma_mask</c> property).
/// A transfer outside the device buffer makes QEMU abort; the model instead performs nothing, ends the command and
/// records the error in <see cref="GuestErrors"/>.</para>
/// </remarks>
public sealed class EduDevice : EmulatedPciDevice
{
    /// <summary>The device address of the DMA buffer.</summary>
    public const ulong DmaBufferAddress = 0x40000;

    /// <summary>The size of the DMA buffer.</summary>
    public const int DmaBufferSize = 4096;

    private const uint StatusComputing = 0x01;
    private const uint StatusIrqFact = 0x80;
    private const uint FactIrq = 0x001;
    private const uint DmaIrq = 0x100;
    private const ulong DmaRun = 0x1;
    private const ulong DmaToPci = 0x2;
    private const ulong DmaIrqFlag = 0x4;

    private readonly PciBar?[] _bars = [new PciBar(1 << 20), null, null, null, null, null];
    private readonly byte[] _dmaBuffer = new byte[DmaBufferSize];
    private readonly List<string> _guestErrors = [];
    private uint _addr4;
    private uint _fact;
    private uint _status;
    private uint _irqStatus;
    private ulong _dmaSrc, _dmaDst, _dmaCount, _dmaCmd;

    /// <summary>QEMU's default DMA mask for edu: 28 bits.</summary>
    public const ulong DefaultDmaMask = (1UL << 28) - 1;

    /// <summary>Creates the device with QEMU's default 28-bit DMA mask.</summary>
    public EduDevice()
        : this(DefaultDmaMask)
    {
    }

    /// <summary>Creates the device with a DMA mask, as QEMU's <c>-device edu,dma_mask=...</c>.</summary>
    /// <param name="dmaMask">The mask DMA addresses are clamped to; all-ones for no-IOMMU tests with process addresses.</param>
    public EduDevice(ulong dmaMask) => DmaMask = dmaMask;

    /// <summary>The DMA mask addresses are clamped to.</summary>
    public ulong DmaMask { get; }

    /// <summary>How long a DMA takes (default 100 ms, as edu.c).</summary>
    public TimeSpan DmaDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a factorial takes (edu.c computes it in a thread; default 1 ms).</summary>
    public TimeSpan FactorialDelay { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Errors where QEMU would have aborted (an out-of-range DMA), oldest first.</summary>
    public IReadOnlyList<string> GuestErrors
    {
        get
        {
            lock (_guestErrors)
            {
                return [.. _guestErrors];
            }
        }
    }

    /// <inheritdoc/>
    public override ushort VendorId => 0x1234;

    /// <inheritdoc/>
    public override ushort DeviceId => 0x11e8;

    /// <inheritdoc/>
    public override uint ClassCode => 0x00ff00;

    /// <inheritdoc/>
    public override byte RevisionId => 0x10;

    /// <inheritdoc/>
    public override IReadOnlyList<PciBar?> Bars => _bars;

    /// <inheritdoc/>
    public override int MsiVectors => 1;

    /// <inheritdoc/>
    protected override ulong ReadBar(int bar, ulong offset, int width)
    {
        ulong allOnes = width == 8 ? ulong.MaxValue : (1UL << (8 * width)) - 1;
        if (offset < 0x80 ? width != 4 : width is not (4 or 8))
        {
            return allOnes;
        }
        ulong value = offset switch
        {
            0x00 => 0x010000ed,
            0x04 => _addr4,
            0x08 => _fact,
            0x20 => _status,
            0x24 => _irqStatus,
            0x80 => _dmaSrc,
            0x88 => _dmaDst,
            0x90 => _dmaCount,
            0x98 => _dmaCmd,
            _ => ulong.MaxValue,
        };
        return value & allOnes;
    }

    /// <inheritdoc/>
    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
        if (offset < 0x80 ? width != 4 : width is not (4 or 8))
        {
            return;
        }
        switch (offset)
        {
            case 0x04:
                _addr4 = ~(uint)value;
                break;
            case 0x08:
                if ((_status & StatusComputing) != 0)
                {
                    break;
                }
                _fact = (uint)value;
                _status |= StatusComputing;
                Schedule(FactorialDelay, ComputeFactorial);
                break;
            case 0x20:
                _status = (value & StatusIrqFact) != 0 ? _status | StatusIrqFact : _status & ~StatusIrqFact;
                break;
            case 0x60:
                RaiseIrq((uint)value);
                break;
            case 0x64:
                LowerIrq((uint)value);
                break;
            case 0x80:
                SetDmaRegister(ref _dmaSrc, value);
                break;
            case 0x88:
                SetDmaRegister(ref _dmaDst, value);
                break;
            case 0x90:
                SetDmaRegister(ref _dmaCount, value);
                break;
            case 0x98:
                if ((value & DmaRun) == 0 || (_dmaCmd & DmaRun) != 0)
                {
                    break;
                }
                _dmaCmd = value;
                Schedule(DmaDelay, DmaTimer);
                break;
            default:
                break;
        }
    }

    /// <inheritdoc/>
    protected override void OnReset()
    {
        _addr4 = _fact = _status = _irqStatus = 0;
        _dmaSrc = _dmaDst = _dmaCount = _dmaCmd = 0;
        SetIntx(false);
    }

    // A 32-bit write to a 64-bit DMA register replaces the whole register, as edu.c's dma_rw does; ignored while a DMA runs.
    private void SetDmaRegister(ref ulong register, ulong value)
    {
        if ((_dmaCmd & DmaRun) == 0)
        {
            register = value;
        }
    }

    private void ComputeFactorial()
    {
        uint n = _fact, result = 1;
        while (n > 0)
        {
            result *= n--;
        }
        _fact = result;
        _status &= ~StatusComputing;
        if ((_status & StatusIrqFact) != 0)
        {
            RaiseIrq(FactIrq);
        }
    }

    private void DmaTimer()
    {
        if ((_dmaCmd & DmaRun) == 0)
        {
            return;
        }
        bool toRam = (_dmaCmd & DmaToPci) != 0;
        ulong bufferAddress = toRam ? _dmaSrc : _dmaDst;
        ulong end = bufferAddress + _dmaCount;
        if (end < bufferAddress || bufferAddress < DmaBufferAddress || end > DmaBufferAddress + DmaBufferSize)
        {
            lock (_guestErrors)
            {
                _guestErrors.Add($"EDU: DMA range 0x{bufferAddress:x16}-0x{end:x16} out of bounds (0x{DmaBufferAddress:x16}-0x{DmaBufferAddress + DmaBufferSize - 1:x16})!");
            }
            _dmaCmd &= ~DmaRun;
            return;
        }
        Span<byte> local = _dmaBuffer.AsSpan((int)(bufferAddress - DmaBufferAddress), (int)_dmaCount);
        if (toRam)
        {
            _ = DmaWrite(_dmaDst & DmaMask, local);
        }
        else
        {
            _ = DmaRead(_dmaSrc & DmaMask, local);
        }
        _dmaCmd &= ~DmaRun;
        if ((_dmaCmd & DmaIrqFlag) != 0)
        {
            RaiseIrq(DmaIrq);
        }
    }

    private void RaiseIrq(uint value)
    {
        _irqStatus |= value;
        if (_irqStatus != 0)
        {
            if (MsiEnabled)
            {
                NotifyMsi(0);
            }
            else
            {
                SetIntx(true);
            }
        }
    }

    private void LowerIrq(uint value)
    {
        _irqStatus &= ~value;
        if (_irqStatus == 0 && !MsiEnabled)
        {
            SetIntx(false);
        }
    }

    /// <summary>The device's DMA buffer (a copy), for tests.</summary>
    /// <returns>The 4096 bytes.</returns>
    public byte[] ReadDmaBuffer() => [.. _dmaBuffer];
}
