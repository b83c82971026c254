// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Simulator;

/// <summary>
/// A small NVMe controller after QEMU's <c>-device nvme</c> (hw/nvme/ctrl.c) with one namespace on a RAM disk: the
/// PCI identity (1b36:0010, class 0x010802, PCI Express with function reset, 65 MSI-X vectors), BAR0's layout (16 KiB,
/// 64-bit: registers, doorbells from 0x1000, the MSI-X table at 0x2000 and the PBA at 0x3000), the controller
/// registers, the admin queue, Identify, I/O queue creation and deletion, Read, Write and Flush.
/// </summary>
/// <remarks>
/// <para>Registers: CAP (MQES 2047, CQR, TO 15 = 7.5 s, DSTRD 0, CSS NVM/CSI/admin-only, MPSMIN 0, MPSMAX 4), VS 1.4,
/// INTMS/INTMC, CC, CSTS, AQA, ASQ, ACQ (32- or 64-bit accesses; the 64-bit registers also by halves). CC.EN 0→1
/// checks the admin queue registers, CC.MPS, CC.IOSQES (6) and CC.IOCQES (4) as QEMU's <c>nvme_start_ctrl</c> and sets
/// CSTS.RDY, or CSTS.CFS when a check fails; CC.EN 1→0 is a controller reset (every queue deleted, CC and CSTS
/// cleared); CC.SHN sets CSTS.SHST to complete. A function reset also clears AQA, ASQ and ACQ. The namespace survives
/// both.</para>
/// <para>Doorbells (stride 4 bytes): SQ y tail at 0x1000 + 8y, CQ y head at 0x1004 + 8y. A submission is processed
/// after the doorbell write returns (device work, as QEMU's timer), in order, while its completion queue has room.
/// Admin commands: Delete/Create I/O SQ (0x00/0x01), Delete/Create I/O CQ (0x04/0x05), Identify (0x06; CNS 0 namespace,
/// 1 controller, 2 active namespace list), Set/Get Features (0x09/0x0a; Number of Queues only, where QEMU offers
/// more), Asynchronous Event Request (0x0c: held outstanding, at most four, as the model has no events). I/O commands on namespace 1: Flush (0x00), Write (0x01), Read (0x02). Everything else completes with
/// Invalid Opcode. Data moves through PRP1/PRP2 and PRP lists (chained when a list page is full), with the memory page
/// size of CC.MPS, at most MDTS (7: 128 pages) per command.</para>
/// <para>Errors complete with QEMU's status codes, Do Not Retry set (but Invalid Queue Deletion and AER Limit Exceeded): Invalid Field, Invalid Namespace, LBA Out of
/// Range, Invalid PRP Offset, Invalid Queue Identifier, Invalid Queue Size, Completion Queue Invalid, Invalid
/// Interrupt Vector, Invalid Queue Deletion. A data transfer the IOMMU blocks completes with Data Transfer Error
/// (0x04), the disk untouched on a write (QEMU itself waits for a mapping that never comes); a submission entry or a
/// completion the IOMMU blocks sets CSTS.CFS and stops the queue, as QEMU. Completions raise the completion queue's
/// MSI-X vector when MSI-X is enabled, otherwise the INTx line while any interrupt-enabled completion queue holds
/// entries.</para>
/// </remarks>
public sealed partial class NvmeDevice : EmulatedPciDevice
{
    /// <summary>The default namespace size: 64 MiB, as the testbed's scratch image.</summary>
    public const long DefaultCapacityBytes = 64L << 20;

    /// <summary>The logical block size (QEMU's default, LBA format 0).</summary>
    public const int BlockSize = 512;

    /// <summary>The number of I/O queue pairs (QEMU's default <c>max_ioqpairs</c>); with the admin queue it is the
    /// MSI-X table size.</summary>
    public const int IoQueuePairs = 64;

    /// <summary>The offset of the MSI-X table in BAR0.</summary>
    public const uint TableOffset = 0x2000;

    /// <summary>The offset of the MSI-X pending-bit array in BAR0.</summary>
    public const uint PbaOffset = 0x3000;

    /// <summary>The offset of the first doorbell in BAR0.</summary>
    public const ulong DoorbellOffset = 0x1000;

    private const int RegisterBytes = 0x40;
    private const ulong Cap = 0x00, Vs = 0x08, Intms = 0x0c, Intmc = 0x10, Cc = 0x14, Csts = 0x1c, Aqa = 0x24, Asq = 0x28, Acq = 0x30;
    private const uint CstsReady = 1, CstsFatal = 2, CstsShutdownComplete = 2u << 2;
    private const int ChunkSize = 4096;

    private readonly PciBar?[] _bars = [new PciBar(0x4000, is64Bit: true), null, null, null, null, null];
    private readonly byte[] _registers = new byte[RegisterBytes];
    private readonly Dictionary<long, byte[]> _chunks = [];
    private readonly SubmissionQueue?[] _sqs = new SubmissionQueue?[IoQueuePairs + 1];
    private readonly CompletionQueue?[] _cqs = new CompletionQueue?[IoQueuePairs + 1];
    private readonly List<string> _guestErrors = [];
    private readonly byte[] _serial;
    private bool _workScheduled;
    private int _outstandingAers;

    /// <summary>Creates the controller with a zero-filled namespace.</summary>
    /// <param name="serial">The serial number Identify Controller reports (QEMU's <c>serial</c>, at most 20 ASCII characters).</param>
    /// <param name="capacityBytes">The namespace's size: a positive multiple of <see cref="BlockSize"/>. Only the blocks
    /// written take memory.</param>
    public NvmeDevice(string serial = "vfiotestbed", long capacityBytes = DefaultCapacityBytes)
    {
        ArgumentNullException.ThrowIfNull(serial);
        if (serial.Length > 20 || !System.Text.Ascii.IsValid(serial))
        {
            throw new ArgumentOutOfRangeException(nameof(serial), serial, "An NVMe serial number is at most 20 ASCII characters.");
        }
        if (capacityBytes <= 0 || capacityBytes % BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacityBytes), capacityBytes, $"An NVMe namespace holds a positive multiple of {BlockSize} bytes.");
        }
        _serial = System.Text.Encoding.ASCII.GetBytes(serial);
        CapacityBytes = capacityBytes;
        ulong cap = 0x7ffUL                     // MQES: 2048 entries
            | (1UL << 16)                       // CQR: queues must be physically contiguous
            | (0xfUL << 24)                     // TO: 15 x 500 ms
            | ((1UL | (1UL << 6) | (1UL << 7)) << 37)   // CSS: NVM, I/O command sets, admin only
            | (4UL << 52);                      // MPSMAX: 64 KiB (MPSMIN 0: 4 KiB)
        BinaryPrimitives.WriteUInt64LittleEndian(_registers.AsSpan((int)Cap), cap);
        BinaryPrimitives.WriteUInt32LittleEndian(_registers.AsSpan((int)Vs), 0x0001_0400);
    }

    /// <summary>The namespace's size in bytes.</summary>
    public long CapacityBytes { get; }

    /// <summary>The namespace's size in logical blocks.</summary>
    public long Blocks => CapacityBytes / BlockSize;

    /// <summary>What the controller logged where QEMU logs a guest error (an invalid doorbell write, a blocked fetch), oldest first.</summary>
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
    public override ushort VendorId => 0x1b36;

    /// <inheritdoc/>
    public override ushort DeviceId => 0x0010;

    /// <inheritdoc/>
    public override uint ClassCode => 0x010802;

    /// <inheritdoc/>
    public override byte RevisionId => 0x02;

    /// <inheritdoc/>
    public override IReadOnlyList<PciBar?> Bars => _bars;

    /// <inheritdoc/>
    public override int MsixVectors => IoQueuePairs + 1;

    /// <inheritdoc/>
    public override uint MsixTableOffset => TableOffset;

    /// <inheritdoc/>
    public override uint MsixPbaOffset => PbaOffset;

    /// <inheritdoc/>
    public override bool IsPciExpress => true;

    /// <inheritdoc/>
    public override bool SupportsFunctionReset => true;

    /// <summary>Reads namespace bytes (what the controller stores), e.g. to check what a driver wrote.</summary>
    /// <param name="offset">The byte offset in the namespace.</param>
    /// <param name="destination">Where the bytes go.</param>
    public void ReadNamespace(long offset, Span<byte> destination)
    {
        if (offset < 0 || offset > CapacityBytes - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"The namespace holds {CapacityBytes} bytes.");
        }
        CopyDisk(offset, destination, toDisk: false);
    }

    /// <inheritdoc/>
    protected override ulong ReadBar(int bar, ulong offset, int width)
    {
        if (offset + (ulong)width > RegisterBytes)
        {
            return 0;   // doorbells and reserved registers read as zero (QEMU: "invalid MMIO read")
        }
        ReadOnlySpan<byte> bytes = _registers.AsSpan((int)offset, width);
        return width switch
        {
            1 => bytes[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            _ => BinaryPrimitives.ReadUInt64LittleEndian(bytes),
        };
    }

    /// <inheritdoc/>
    protected override void WriteBar(int bar, ulong offset, int width, ulong value)
    {
        if (offset >= DoorbellOffset)
        {
            WriteDoorbell(offset, (uint)value);
            return;
        }
        if (width < 4)
        {
            GuestError($"MMIO write of {width} byte(s) at 0x{offset:x}: too small, ignored");
            return;
        }
        switch (offset)
        {
            case Intms:
                SetRegister32(Intms, Register32(Intms) | (uint)value);
                SetRegister32(Intmc, Register32(Intms));
                break;
            case Intmc:
                SetRegister32(Intms, Register32(Intms) & ~(uint)value);
                SetRegister32(Intmc, Register32(Intms));
                break;
            case Cc:
                WriteCc((uint)value);
                break;
            case Aqa:
                SetRegister32(Aqa, (uint)value & 0x0fff_0fff);
                break;
            case Asq or Acq or Asq + 4 or Acq + 4:
                if (width == 8)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(_registers.AsSpan((int)offset), value);
                }
                else
                {
                    SetRegister32(offset, (uint)value);
                }
                break;
            default:
                break;   // CAP, VS, CSTS and the rest are read-only
        }
    }

    /// <inheritdoc/>
    protected override void OnReset()
    {
        ResetController();
        SetRegister32(Aqa, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(_registers.AsSpan((int)Asq), 0);
        BinaryPrimitives.WriteUInt64LittleEndian(_registers.AsSpan((int)Acq), 0);
        SetRegister32(Intms, 0);
        SetRegister32(Intmc, 0);
    }

    private ulong PageSize => 1UL << (12 + (int)((Register32(Cc) >> 7) & 0xf));

    private bool Ready => (Register32(Csts) & CstsReady) != 0;

    private uint Register32(ulong offset) => BinaryPrimitives.ReadUInt32LittleEndian(_registers.AsSpan((int)offset));

    private ulong Register64(ulong offset) => BinaryPrimitives.ReadUInt64LittleEndian(_registers.AsSpan((int)offset));

    private void SetRegister32(ulong offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_registers.AsSpan((int)offset), value);

    private void WriteCc(uint value)
    {
        uint old = Register32(Cc);
        SetRegister32(Cc, value);
        uint csts = Register32(Csts);
        uint shn = (value >> 14) & 3, oldShn = (old >> 14) & 3;
        if (shn != 0 && oldShn == 0)
        {
            csts = (csts & ~(3u << 2)) | CstsShutdownComplete;
        }
        else if (shn == 0 && oldShn != 0)
        {
            csts &= ~(3u << 2);
        }
        SetRegister32(Csts, csts);
        bool enable = (value & 1) != 0, wasEnabled = (old & 1) != 0;
        if (enable && !wasEnabled)
        {
            string? failure = StartController(value);
            if (failure is not null)
            {
                GuestError($"controller start failed: {failure}");
            }
            SetRegister32(Csts, failure is null ? CstsReady : CstsFatal);
        }
        else if (!enable && wasEnabled)
        {
            ResetController();
        }
    }

    /// <summary>QEMU's <c>nvme_start_ctrl</c> checks; creates the admin queues.</summary>
    private string? StartController(uint cc)
    {
        ulong asq = Register64(Asq), acq = Register64(Acq), page = PageSize;
        uint aqa = Register32(Aqa);
        uint mps = (cc >> 7) & 0xf, css = (cc >> 4) & 7, iosqes = (cc >> 16) & 0xf, iocqes = (cc >> 20) & 0xf;
        string? failure = (asq, acq) switch
        {
            (0, _) => "ASQ is zero",
            (_, 0) => "ACQ is zero",
            _ when (asq & (page - 1)) != 0 => "ASQ is not page aligned",
            _ when (acq & (page - 1)) != 0 => "ACQ is not page aligned",
            _ when css is not (0 or 6 or 7) => $"CC.CSS {css} is not supported",
            _ when mps > 4 => $"CC.MPS {mps} exceeds CAP.MPSMAX 4",
            _ when iocqes != 4 => $"CC.IOCQES {iocqes} is not 4",
            _ when iosqes != 6 => $"CC.IOSQES {iosqes} is not 6",
            _ when (aqa & 0xfff) == 0 => "AQA.ASQS is zero",
            _ when ((aqa >> 16) & 0xfff) == 0 => "AQA.ACQS is zero",
            _ => null,
        };
        if (failure is null)
        {
            _cqs[0] = new CompletionQueue(0, acq, ((aqa >> 16) & 0xfff) + 1, interruptEnabled: true, vector: 0);
            _sqs[0] = new SubmissionQueue(0, asq, (aqa & 0xfff) + 1, cqId: 0);
        }
        return failure;
    }

    private void ResetController()
    {
        Array.Clear(_sqs);
        Array.Clear(_cqs);
        _outstandingAers = 0;
        SetRegister32(Cc, 0);
        SetRegister32(Csts, 0);
        SetIntx(false);
    }

    private void WriteDoorbell(ulong offset, uint value)
    {
        ulong index = (offset - DoorbellOffset) / 4;
        int qid = (int)(index / 2);
        bool completion = index % 2 == 1;
        if ((offset & 3) != 0 || qid > IoQueuePairs || !Ready)
        {
            GuestError($"doorbell write at 0x{offset:x} ignored ({(Ready ? "no such doorbell" : "controller not ready")})");
            return;
        }
        if (completion)
        {
            if (_cqs[qid] is not { } cq || value >= cq.Size)
            {
                GuestError($"CQ {qid} head doorbell {value} ignored (no such queue or beyond its size)");
                return;
            }
            cq.Head = value;
            if (!MsixEnabled && _cqs.All(q => q is null || !q.InterruptEnabled || q.Head == q.Tail))
            {
                SetIntx(false);
            }
        }
        else
        {
            if (_sqs[qid] is not { } sq || value >= sq.Size)
            {
                GuestError($"SQ {qid} tail doorbell {value} ignored (no such queue or beyond its size)");
                return;
            }
            sq.Tail = value;
        }
        if (!_workScheduled)
        {
            _workScheduled = true;
            Schedule(TimeSpan.Zero, ProcessQueues);
        }
    }

    /// <summary>Runs every submission queue's new commands while their completion queues have room.</summary>
    private void ProcessQueues()
    {
        _workScheduled = false;
        bool progress = true;
        Span<byte> entry = stackalloc byte[64];
        while (progress && Ready)
        {
            progress = false;
            foreach (SubmissionQueue? sq in _sqs)
            {
                if (sq is null || sq.Head == sq.Tail || _cqs[sq.CqId] is not { } cq || cq.IsFull)
                {
                    continue;
                }
                if (!DmaRead(sq.Base + (sq.Head * 64UL), entry))
                {
                    Fatal($"SQ {sq.Id} entry {sq.Head} at 0x{sq.Base + (sq.Head * 64UL):x}: the fetch was blocked");
                    return;
                }
                sq.Head = (sq.Head + 1) % sq.Size;
                var command = new Command(entry);
                (ushort status, uint result) = sq.Id == 0 ? ExecuteAdmin(command) : ExecuteIo(command);
                if (status != NoCompletion && !Post(cq, sq, command.Id, status, result))
                {
                    return;
                }
                progress = true;
            }
        }
    }

    private bool Post(CompletionQueue cq, SubmissionQueue sq, ushort commandId, ushort status, uint result)
    {
        Span<byte> entry = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(entry, result);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], sq.Head | ((uint)sq.Id << 16));
        BinaryPrimitives.WriteUInt32LittleEndian(entry[12..], commandId | ((uint)cq.Phase << 16) | ((uint)status << 17));
        if (!DmaWrite(cq.Base + (cq.Tail * 16UL), entry))
        {
            Fatal($"CQ {cq.Id} entry {cq.Tail} at 0x{cq.Base + (cq.Tail * 16UL):x}: the post was blocked");
            return false;
        }
        cq.Tail++;
        if (cq.Tail == cq.Size)
        {
            cq.Tail = 0;
            cq.Phase ^= 1;
        }
        if (cq.InterruptEnabled)
        {
            if (MsixEnabled)
            {
                NotifyMsix(cq.Vector);
            }
            else
            {
                SetIntx(true);
            }
        }
        return true;
    }

    private void Fatal(string what)
    {
        GuestError(what);
        SetRegister32(Csts, Register32(Csts) | CstsFatal);
    }

    private void GuestError(string message)
    {
        lock (_guestErrors)
        {
            _guestErrors.Add($"nvme: {message}");
        }
    }

    /// <summary>Copies between the sparse RAM disk and <paramref name="data"/>; blocks never written read as zeros.</summary>
    private void CopyDisk(long offset, Span<byte> data, bool toDisk)
    {
        while (!data.IsEmpty)
        {
            long chunk = offset / ChunkSize;
            int within = (int)(offset % ChunkSize);
            int n = Math.Min(ChunkSize - within, data.Length);
            if (toDisk)
            {
                if (!_chunks.TryGetValue(chunk, out byte[]? bytes))
                {
                    _chunks[chunk] = bytes = new byte[ChunkSize];
                }
                data[..n].CopyTo(bytes.AsSpan(within));
            }
            else if (_chunks.TryGetValue(chunk, out byte[]? bytes))
            {
                bytes.AsSpan(within, n).CopyTo(data);
            }
            else
            {
                data[..n].Clear();
            }
            offset += n;
            data = data[n..];
        }
    }

    private sealed class SubmissionQueue(int id, ulong baseAddress, uint size, int cqId)
    {
        public int Id { get; } = id;

        public ulong Base { get; } = baseAddress;

        public uint Size { get; } = size;

        public int CqId { get; } = cqId;

        public uint Head { get; set; }

        public uint Tail { get; set; }
    }

    private sealed class CompletionQueue(int id, ulong baseAddress, uint size, bool interruptEnabled, int vector)
    {
        public int Id { get; } = id;

        public ulong Base { get; } = baseAddress;

        public uint Size { get; } = size;

        public bool InterruptEnabled { get; } = interruptEnabled;

        public int Vector { get; } = vector;

        public uint Head { get; set; }

        public uint Tail { get; set; }

        public int Phase { get; set; } = 1;

        public bool IsFull => (Tail + 1) % Size == Head;
    }
}
