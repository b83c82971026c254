// SPDX-License-Identifier: MIT
using System.Buffers.Binary;

namespace Vfio.Simulator;

public sealed partial class NvmeDevice
{
    // Status field values (SCT << 8 | SC) with Do Not Retry (bit 14), as QEMU completes errors.
    private const ushort Success = 0, Dnr = 0x4000;
    private const ushort InvalidOpcode = 0x01 | Dnr, InvalidField = 0x02 | Dnr, DataTransferError = 0x04 | Dnr,
        InvalidNamespace = 0x0b | Dnr, InvalidPrpOffset = 0x13 | Dnr, LbaOutOfRange = 0x80 | Dnr,
        CqInvalid = 0x100 | Dnr, InvalidQid = 0x101 | Dnr, InvalidQueueSize = 0x102 | Dnr,
        InvalidVector = 0x108 | Dnr, InvalidQueueDeletion = 0x10c, AerLimitExceeded = 0x105;
    private const ushort NoCompletion = ushort.MaxValue;   // the command stays outstanding (an Asynchronous Event Request)
    private const int AerLimit = 4;                        // QEMU's aerl 3: four outstanding requests
    private const int Mdts = 7;
    private const uint NamespaceCount = 256;

    private (ushort Status, uint Result) ExecuteAdmin(Command c) => c.Opcode switch
    {
        0x00 => DeleteSq(c),
        0x01 => CreateSq(c),
        0x04 => DeleteCq(c),
        0x05 => CreateCq(c),
        0x06 => Identify(c),
        0x09 or 0x0a => Features(c),
        0x0c => AsyncEventRequest(),
        _ => (InvalidOpcode, 0),
    };

    /// <summary>Held until an event occurs, which the model never has: the request stays outstanding until a reset.</summary>
    private (ushort, uint) AsyncEventRequest()
    {
        if (_outstandingAers >= AerLimit)
        {
            return (AerLimitExceeded, 0);
        }
        _outstandingAers++;
        return (NoCompletion, 0);
    }

    private (ushort Status, uint Result) ExecuteIo(Command c)
    {
        // QEMU's nvme_io_cmd: Flush of every namespace, an invalid id (broadcast included), then a valid id without a
        // namespace, then the opcode.
        if (c.Opcode == 0x00 && c.Nsid == uint.MaxValue)
        {
            return (Success, 0);
        }
        if (c.Nsid is 0 or uint.MaxValue || c.Nsid > NamespaceCount)
        {
            return (InvalidNamespace, 0);
        }
        if (c.Nsid != 1)
        {
            return (InvalidField, 0);
        }
        if (c.Opcode is not (0x00 or 0x01 or 0x02))
        {
            return (InvalidOpcode, 0);
        }
        if (c.Opcode == 0x00)
        {
            return (Success, 0);   // the RAM disk has no volatile cache to flush
        }
        ulong slba = c.Dword(10) | ((ulong)c.Dword(11) << 32);
        ulong blocks = (c.Dword(12) & 0xffff) + 1UL;
        ulong length = blocks * BlockSize;
        if (slba > (ulong)Blocks || blocks > (ulong)Blocks - slba)
        {
            return (LbaOutOfRange, 0);
        }
        if (length > (PageSize << Mdts))
        {
            return (InvalidField, 0);
        }
        byte[] data = new byte[length];
        bool write = c.Opcode == 0x01;
        if (!write)
        {
            CopyDisk((long)(slba * BlockSize), data, toDisk: false);
        }
        ushort status = Transfer(c, data, toMemory: !write);
        if (status == Success && write)
        {
            CopyDisk((long)(slba * BlockSize), data, toDisk: true);
        }
        return (status, 0);
    }

    private (ushort, uint) CreateCq(Command c)
    {
        int qid = (int)(c.Dword(10) & 0xffff);
        uint size = (c.Dword(10) >> 16) + 1;
        uint flags = c.Dword(11);
        int vector = (int)(flags >> 16);
        if (qid is 0 or > IoQueuePairs || _cqs[qid] is not null)
        {
            return (InvalidQid, 0);
        }
        if (size < 2 || size > 2048)
        {
            return (InvalidQueueSize, 0);
        }
        if ((c.Prp1 & (PageSize - 1)) != 0)
        {
            return (InvalidPrpOffset, 0);
        }
        if ((!MsixEnabled && vector != 0) || vector >= MsixVectors)
        {
            return (InvalidVector, 0);
        }
        if ((flags & 1) == 0)
        {
            return (InvalidField, 0);   // CAP.CQR: physically contiguous only
        }
        _cqs[qid] = new CompletionQueue(qid, c.Prp1, size, (flags & 2) != 0, vector);
        return (Success, 0);
    }

    private (ushort, uint) CreateSq(Command c)
    {
        int qid = (int)(c.Dword(10) & 0xffff);
        uint size = (c.Dword(10) >> 16) + 1;
        int cqId = (int)(c.Dword(11) >> 16);
        if (cqId is 0 or > IoQueuePairs || _cqs[cqId] is null)
        {
            return (CqInvalid, 0);
        }
        if (qid is 0 or > IoQueuePairs || _sqs[qid] is not null)
        {
            return (InvalidQid, 0);
        }
        if (size < 2 || size > 2048)
        {
            return (InvalidQueueSize, 0);
        }
        if ((c.Prp1 & (PageSize - 1)) != 0)
        {
            return (InvalidPrpOffset, 0);
        }
        if ((c.Dword(11) & 1) == 0)
        {
            return (InvalidField, 0);
        }
        _sqs[qid] = new SubmissionQueue(qid, c.Prp1, size, cqId);
        return (Success, 0);
    }

    private (ushort, uint) DeleteSq(Command c)
    {
        int qid = (int)(c.Dword(10) & 0xffff);
        if (qid is 0 or > IoQueuePairs || _sqs[qid] is null)
        {
            return (InvalidQid, 0);
        }
        _sqs[qid] = null;   // its outstanding commands are done: they ran when they were fetched
        return (Success, 0);
    }

    private (ushort, uint) DeleteCq(Command c)
    {
        int qid = (int)(c.Dword(10) & 0xffff);
        if (qid is 0 or > IoQueuePairs || _cqs[qid] is null)
        {
            return (CqInvalid, 0);
        }
        if (_sqs.Any(sq => sq is not null && sq.CqId == qid))
        {
            return (InvalidQueueDeletion, 0);
        }
        _cqs[qid] = null;
        return (Success, 0);
    }

    private (ushort, uint) Features(Command c)
    {
        if ((c.Dword(10) & 0xff) != 0x07)
        {
            return (InvalidField, 0);   // only Number of Queues
        }
        if (c.Opcode == 0x09 && ((c.Dword(11) & 0xffff) == 0xffff || (c.Dword(11) >> 16) == 0xffff))
        {
            return (InvalidField, 0);
        }
        const uint granted = IoQueuePairs - 1;
        return (Success, granted | (granted << 16));
    }

    private (ushort, uint) Identify(Command c)
    {
        byte[] data = new byte[4096];
        switch (c.Dword(10) & 0xff)
        {
            case 0:
                if (c.Nsid is 0 || (c.Nsid > NamespaceCount && c.Nsid != uint.MaxValue))
                {
                    return (InvalidNamespace, 0);
                }
                if (c.Nsid == 1)
                {
                    IdentifyNamespace(data);
                }
                break;
            case 1:
                IdentifyController(data);
                break;
            case 2:
                if (c.Nsid >= 0xffff_fffe)
                {
                    return (InvalidNamespace, 0);
                }
                if (c.Nsid < 1)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(data, 1);
                }
                break;
            default:
                return (InvalidField, 0);
        }
        return (Transfer(c, data, toMemory: true), 0);
    }

    private void IdentifyController(Span<byte> data)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(data, VendorId);
        BinaryPrimitives.WriteUInt16LittleEndian(data[2..], SubsystemVendorId);
        data.Slice(4, 20 + 40 + 8).Fill((byte)' ');
        _serial.CopyTo(data[4..]);
        "QEMU NVMe Ctrl"u8.CopyTo(data[24..]);
        "1.0"u8.CopyTo(data[64..]);
        data[72] = 6;                                   // RAB
        data[73] = 0x00;                                // IEEE OUI (QEMU's 52:54:00)
        data[74] = 0x54;
        data[75] = 0x52;
        data[77] = Mdts;
        BinaryPrimitives.WriteUInt32LittleEndian(data[80..], 0x0001_0400);   // VER
        data[512] = 0x66;                               // SQES: 64 bytes
        data[513] = 0x44;                               // CQES: 16 bytes
        BinaryPrimitives.WriteUInt32LittleEndian(data[516..], NamespaceCount);
        "nqn.2019-08.org.qemu:"u8.CopyTo(data[768..]);
        _serial.CopyTo(data[(768 + 21)..]);
    }

    private void IdentifyNamespace(Span<byte> data)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(data, (ulong)Blocks);        // NSZE
        BinaryPrimitives.WriteUInt64LittleEndian(data[8..], (ulong)Blocks);   // NCAP
        BinaryPrimitives.WriteUInt64LittleEndian(data[16..], (ulong)Blocks);  // NUSE
        data[25] = 7;                                                          // NLBAF: eight formats
        data[26] = 0;                                                          // FLBAS: format 0
        ReadOnlySpan<(ushort Ms, byte Lbads)> formats = [(0, 9), (8, 9), (16, 9), (64, 9), (0, 12), (8, 12), (16, 12), (64, 12)];
        for (int i = 0; i < formats.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(data[(128 + (4 * i))..], formats[i].Ms | ((uint)formats[i].Lbads << 16));
        }
    }

    /// <summary>Moves <paramref name="data"/> to or from the command's PRP1/PRP2 (or PRP list) memory.</summary>
    private ushort Transfer(Command c, Span<byte> data, bool toMemory)
    {
        ulong page = PageSize;
        ulong first = Math.Min((ulong)data.Length, page - (c.Prp1 & (page - 1)));
        var segments = new List<(ulong Address, int Length)> { (c.Prp1, (int)first) };
        ulong left = (ulong)data.Length - first;
        if (left > 0 && left <= page)
        {
            if ((c.Prp2 & (page - 1)) != 0)
            {
                return InvalidPrpOffset;
            }
            segments.Add((c.Prp2, (int)left));
        }
        else if (left > 0)
        {
            ulong list = c.Prp2;
            if ((list & 7) != 0)
            {
                return InvalidPrpOffset;
            }
            Span<byte> entry = stackalloc byte[8];
            while (left > 0)
            {
                bool lastInPage = ((list + 8) & (page - 1)) == 0;
                if (!DmaRead(list, entry))
                {
                    return DataTransferError;
                }
                ulong address = BinaryPrimitives.ReadUInt64LittleEndian(entry);
                if ((address & (page - 1)) != 0)
                {
                    return InvalidPrpOffset;
                }
                if (lastInPage && left > page)
                {
                    list = address;   // the last entry of a full list page points to the next list page
                    continue;
                }
                ulong n = Math.Min(left, page);
                segments.Add((address, (int)n));
                left -= n;
                list += 8;
            }
        }
        int offset = 0;
        foreach ((ulong address, int length) in segments)
        {
            Span<byte> part = data.Slice(offset, length);
            if (!(toMemory ? DmaWrite(address, part) : DmaRead(address, part)))
            {
                return DataTransferError;
            }
            offset += length;
        }
        return Success;
    }

    /// <summary>A 64-byte submission queue entry.</summary>
    private readonly struct Command
    {
        private readonly uint[] _dwords;

        public Command(ReadOnlySpan<byte> entry)
        {
            _dwords = new uint[16];
            for (int i = 0; i < 16; i++)
            {
                _dwords[i] = BinaryPrimitives.ReadUInt32LittleEndian(entry[(4 * i)..]);
            }
        }

        public byte Opcode => (byte)_dwords[0];

        public ushort Id => (ushort)(_dwords[0] >> 16);

        public uint Nsid => _dwords[1];

        public ulong Prp1 => _dwords[6] | ((ulong)_dwords[7] << 32);

        public ulong Prp2 => _dwords[8] | ((ulong)_dwords[9] << 32);

        public uint Dword(int index) => _dwords[index];
    }
}
