// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using Vfio.Core;
using Vfio.Devices.Pci;

namespace Vfio.Samples.Nvme;

/// <summary>An NVMe submission command: the fields this driver sets in a 64-byte entry.</summary>
/// <param name="Name">The command's name, for errors.</param>
/// <param name="Opcode">The opcode.</param>
public readonly record struct NvmeCommand(string Name, byte Opcode)
{
    /// <summary>The namespace id (CDW1).</summary>
    public uint NamespaceId { get; init; }

    /// <summary>PRP entry 1.</summary>
    public ulong Prp1 { get; init; }

    /// <summary>PRP entry 2 (a second page or a PRP list).</summary>
    public ulong Prp2 { get; init; }

    /// <summary>Command dword 10.</summary>
    public uint Cdw10 { get; init; }

    /// <summary>Command dword 11.</summary>
    public uint Cdw11 { get; init; }

    /// <summary>Command dword 12.</summary>
    public uint Cdw12 { get; init; }
}

/// <summary>
/// A submission queue and its completion queue in DMA memory, with their doorbells and the MSI-X vector the completion
/// queue raises. One command is outstanding at a time (the queue's gate); a completion is awaited on the vector's
/// interrupt event, never by spinning, with a timeout and the caller's cancellation. A completion that arrives after
/// its command was given up (timed out or cancelled) is consumed and dropped by the next command.
/// </summary>
internal sealed class NvmeQueuePair : IDisposable
{
    private const int SqEntry = 64, CqEntry = 16;
    private readonly VfioRegionMapping _bar0;
    private readonly PciMsix _msix;
    private readonly string _device;
    private readonly ulong _sqDoorbell, _cqDoorbell;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private uint _sqTail, _cqHead;
    private int _phase = 1;
    private ushort _nextId;

    internal NvmeQueuePair(string device, int id, int entries, DmaSpace space, VfioRegionMapping bar0, PciMsix msix, int vector, int doorbellStride)
    {
        _device = device;
        Id = id;
        Entries = entries;
        _bar0 = bar0;
        _msix = msix;
        Vector = vector;
        _sqDoorbell = 0x1000 + ((ulong)(2 * id) * (ulong)doorbellStride);
        _cqDoorbell = 0x1000 + ((ulong)((2 * id) + 1) * (ulong)doorbellStride);
        Submissions = DmaBuffer.Allocate(space, (ulong)(entries * SqEntry));
        try
        {
            Completions = DmaBuffer.Allocate(space, (ulong)(entries * CqEntry));
        }
        catch
        {
            Submissions.Dispose();
            throw;
        }
        Submissions.Span.Clear();
        Completions.Span.Clear();
    }

    internal int Id { get; }

    internal int Entries { get; }

    internal int Vector { get; }

    internal DmaBuffer Submissions { get; }

    internal DmaBuffer Completions { get; }

    /// <summary>Submits <paramref name="command"/> and awaits its completion; returns its dword 0.</summary>
    internal async Task<uint> ExecuteAsync(NvmeCommand command, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ushort id = _nextId++;
            Submit(command, id);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            while (true)
            {
                while (TryTakeCompletion(out ushort completedId, out ushort status, out uint result))
                {
                    if (completedId != id)
                    {
                        continue;   // a command given up earlier
                    }
                    if (status != 0)
                    {
                        throw new NvmeCommandException(_device, command.Name, command.Opcode, Id, status);
                    }
                    return result;
                }
                try
                {
                    await _msix.WaitAsync(Vector, deadline.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new NvmeTimeoutException(_device, command.Name, timeout);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        Submissions.Dispose();
        Completions.Dispose();
        _gate.Dispose();
    }

    private void Submit(NvmeCommand command, ushort id)
    {
        Span<byte> entry = Submissions.GetSpan(_sqTail * SqEntry, SqEntry);
        entry.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(entry, command.Opcode | ((uint)id << 16));
        BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], command.NamespaceId);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[24..], command.Prp1);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[32..], command.Prp2);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[40..], command.Cdw10);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[44..], command.Cdw11);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[48..], command.Cdw12);
        _sqTail = (_sqTail + 1) % (uint)Entries;
        Interlocked.MemoryBarrier();   // the entry is in memory before the doorbell tells the controller
        _bar0.Write32(_sqDoorbell, _sqTail);
    }

    private bool TryTakeCompletion(out ushort id, out ushort status, out uint result)
    {
        Span<byte> entry = Completions.GetSpan(_cqHead * CqEntry, CqEntry);
        uint dw3 = Volatile.Read(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(entry[12..])));
        if ((int)((dw3 >> 16) & 1) != _phase)
        {
            id = status = 0;
            result = 0;
            return false;
        }
        Interlocked.MemoryBarrier();   // the rest of the entry after its phase tag
        result = BinaryPrimitives.ReadUInt32LittleEndian(entry);
        id = (ushort)dw3;
        status = (ushort)(dw3 >> 17);
        _cqHead++;
        if (_cqHead == (uint)Entries)
        {
            _cqHead = 0;
            _phase ^= 1;
        }
        _bar0.Write32(_cqDoorbell, _cqHead);
        return true;
    }
}
