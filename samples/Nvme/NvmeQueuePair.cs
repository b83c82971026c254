// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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
/// queue raises. Up to <see cref="Depth"/> commands are in flight at once, each under its own command id (a slot); the
/// waiter that finds its command still running takes the queue's reaper gate if it is free, reaps every new completion
/// queue entry (phase tag), wakes the waiters of the commands it completed, rings the completion doorbell once for all
/// of them and, when its own command is still not done, awaits the vector's interrupt event (never spinning) until its
/// deadline or the caller's cancellation; the other waiters sleep on their own id's wake-up, and a waiter leaving a free
/// gate wakes one of them to take it. A command given up
/// (timed out or cancelled) keeps its id until its completion arrives, which is then dropped, so a late completion is
/// never taken for a newer command; the depth it held is free at once.
/// </summary>
internal sealed class NvmeQueuePair : IDisposable
{
    private const int SqEntry = 64, CqEntry = 16, Page = 4096;
    private const byte Free = 0, Running = 1, Done = 2, Abandoned = 3;
    private readonly VfioRegionMapping _bar0;
    private readonly PciMsix _msix;
    private readonly string _device;
    private readonly ulong _sqDoorbell, _cqDoorbell;
    private readonly Lock _lock = new();               // the submission queue tail, the completion queue head, the slots
    private readonly SemaphoreSlim _depth;             // commands awaited at once
    private readonly SemaphoreSlim _reaper = new(1, 1); // the one waiter on the interrupt event
    private readonly SemaphoreSlim[] _wake;            // per command id: its completion was reaped, or reap in turn
    private readonly byte[] _state;                    // per command id
    private readonly ushort[] _status;
    private readonly uint[] _result;
    private readonly DmaBuffer? _prpLists;             // one PRP list page per command id (I/O queues)
    private uint _sqTail, _cqHead;
    private int _phase = 1;
    private int _nextId;

    internal NvmeQueuePair(string device, int id, int entries, int depth, bool prpLists, DmaSpace space, VfioRegionMapping bar0, PciMsix msix, int vector, int doorbellStride)
    {
        _device = device;
        Id = id;
        Entries = entries;
        Depth = depth;
        _bar0 = bar0;
        _msix = msix;
        Vector = vector;
        _sqDoorbell = 0x1000 + ((ulong)(2 * id) * (ulong)doorbellStride);
        _cqDoorbell = 0x1000 + ((ulong)((2 * id) + 1) * (ulong)doorbellStride);
        // At most entries - 1 commands are outstanding (ids), so neither queue can overflow.
        _state = new byte[entries - 1];
        _status = new ushort[entries - 1];
        _result = new uint[entries - 1];
        _depth = new SemaphoreSlim(depth, depth);
        _wake = new SemaphoreSlim[entries - 1];
        for (int i = 0; i < _wake.Length; i++)
        {
            _wake[i] = new SemaphoreSlim(0, int.MaxValue);   // a wake-up nobody took is only a spurious one later
        }
        var owned = new List<IDisposable>(3);
        try
        {
            Submissions = DmaBuffer.Allocate(space, (ulong)(entries * SqEntry));
            owned.Add(Submissions);
            Completions = DmaBuffer.Allocate(space, (ulong)(entries * CqEntry));
            owned.Add(Completions);
            if (prpLists)
            {
                _prpLists = DmaBuffer.Allocate(space, (ulong)(entries - 1) * Page);
            }
        }
        catch
        {
            owned.ForEach(o => o.Dispose());
            Array.ForEach(_wake, w => w.Dispose());
            _depth.Dispose();
            _reaper.Dispose();
            throw;
        }
        Submissions.Span.Clear();
        Completions.Span.Clear();
    }

    internal int Id { get; }

    internal int Entries { get; }

    /// <summary>How many commands may be awaited at once.</summary>
    internal int Depth { get; }

    internal int Vector { get; }

    internal DmaBuffer Submissions { get; }

    internal DmaBuffer Completions { get; }

    /// <summary>Submits <paramref name="command"/> and awaits its completion; returns its dword 0. With
    /// <paramref name="listPages"/> above 0, PRP2 becomes this command's PRP list page, listing that many pages from
    /// <paramref name="listFrom"/> on (I/O queues only).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<uint> ExecuteAsync(NvmeCommand command, TimeSpan timeout, CancellationToken cancellationToken, ulong listFrom = 0, int listPages = 0)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        if (!await _depth.WaitAsync(timeout, cancellationToken).ConfigureAwait(false))
        {
            throw new NvmeTimeoutException(_device, command.Name, timeout);
        }
        int cid;
        try
        {
            cid = Submit(command, listFrom, listPages);
        }
        catch
        {
            _depth.Release();
            throw;
        }
        try
        {
            while (true)
            {
                if (TryFinish(cid, command, out uint result))
                {
                    return result;
                }
                TimeSpan left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (left <= TimeSpan.Zero)
                {
                    throw new NvmeTimeoutException(_device, command.Name, timeout);
                }
                if (!_reaper.Wait(0))
                {
                    // Another waiter reaps: it wakes this one when the command is done or when it leaves.
                    _ = await _wake[cid].WaitAsync(left, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                try
                {
                    if (!ReapFor(cid))
                    {
                        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                        wait.CancelAfter(left);
                        try
                        {
                            await _msix.WaitAsync(Vector, wait.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                        {
                            // the deadline: the loop reaps once more, then reports the timeout
                        }
                    }
                }
                finally
                {
                    _reaper.Release();
                }
            }
        }
        catch (Exception e) when (e is NvmeTimeoutException or OperationCanceledException)
        {
            GiveUp(cid);
            throw;
        }
        finally
        {
            HandOver(cid);
        }
    }

    public void Dispose()
    {
        Submissions.Dispose();
        Completions.Dispose();
        _prpLists?.Dispose();
        Array.ForEach(_wake, w => w.Dispose());
        _depth.Dispose();
        _reaper.Dispose();
    }

    /// <summary>Writes the command into the next submission entry under a free id and rings the tail doorbell.</summary>
    private int Submit(NvmeCommand command, ulong listFrom, int listPages)
    {
        lock (_lock)
        {
            int cid = -1;
            for (int i = 0; i < _state.Length; i++)
            {
                int candidate = (_nextId + i) % _state.Length;
                if (_state[candidate] == Free)
                {
                    cid = candidate;
                    break;
                }
            }
            if (cid < 0)
            {
                throw new NvmeControllerException(_device, $"every command id of queue {Id} belongs to a command the controller never completed; reset the controller (dispose it and open it again).");
            }
            _nextId = (cid + 1) % _state.Length;
            ulong prp2 = command.Prp2;
            if (listPages > 0)
            {
                DmaBuffer lists = _prpLists ?? throw new InvalidOperationException($"queue {Id} of {_device} has no PRP list pages.");
                Span<byte> list = lists.GetSpan((ulong)cid * Page, Page);
                for (int i = 0; i < listPages; i++)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(list[(8 * i)..], listFrom + ((ulong)i * Page));
                }
                prp2 = lists.Iova + ((ulong)cid * Page);
            }
            Span<byte> entry = Submissions.GetSpan(_sqTail * SqEntry, SqEntry);
            entry.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(entry, command.Opcode | ((uint)cid << 16));
            BinaryPrimitives.WriteUInt32LittleEndian(entry[4..], command.NamespaceId);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[24..], command.Prp1);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[32..], prp2);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[40..], command.Cdw10);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[44..], command.Cdw11);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[48..], command.Cdw12);
            _state[cid] = Running;
            _sqTail = (_sqTail + 1) % (uint)Entries;
            Interlocked.MemoryBarrier();   // the entry is in memory before the doorbell tells the controller
            _bar0.Write32(_sqDoorbell, _sqTail);
            return cid;
        }
    }

    /// <summary>Reaps what has arrived; true (and the id free again) when <paramref name="cid"/> is done, an error status
    /// thrown as <see cref="NvmeCommandException"/>.</summary>
    private bool TryFinish(int cid, NvmeCommand command, out uint result)
    {
        ushort status;
        lock (_lock)
        {
            ReapLocked();
            if (_state[cid] != Done)
            {
                result = 0;
                return false;
            }
            status = _status[cid];
            result = _result[cid];
            _state[cid] = Free;
        }
        _depth.Release();
        if (status != 0)
        {
            throw new NvmeCommandException(_device, command.Name, command.Opcode, Id, status);
        }
        return true;
    }

    private bool ReapFor(int cid)
    {
        lock (_lock)
        {
            ReapLocked();
            return _state[cid] != Running;
        }
    }

    /// <summary>A waiter leaving while no one holds the reaper gate wakes one waiter of a running command to take it, so
    /// a running command always has someone reaping or about to.</summary>
    private void HandOver(int cid)
    {
        if (_reaper.CurrentCount == 0)
        {
            return;
        }
        lock (_lock)
        {
            for (int i = 1; i < _state.Length; i++)
            {
                int other = (cid + i) % _state.Length;
                if (_state[other] == Running)
                {
                    _wake[other].Release();
                    return;
                }
            }
        }
    }

    /// <summary>The waiter gives up: the id stays held until the controller completes it (then dropped), unless the
    /// completion already came.</summary>
    private void GiveUp(int cid)
    {
        lock (_lock)
        {
            ReapLocked();
            _state[cid] = _state[cid] == Done ? Free : Abandoned;
        }
        _depth.Release();
    }

    /// <summary>Takes every new completion entry (its phase tag the current phase), then rings the head doorbell once.</summary>
    private void ReapLocked()
    {
        int taken = 0;
        while (true)
        {
            Span<byte> entry = Completions.GetSpan(_cqHead * CqEntry, CqEntry);
            uint dw3 = Volatile.Read(ref MemoryMarshal.GetReference(MemoryMarshal.Cast<byte, uint>(entry[12..])));
            if ((int)((dw3 >> 16) & 1) != _phase)
            {
                break;
            }
            Interlocked.MemoryBarrier();   // the rest of the entry after its phase tag
            int cid = (ushort)dw3;
            if (cid < _state.Length)
            {
                if (_state[cid] == Running)
                {
                    _result[cid] = BinaryPrimitives.ReadUInt32LittleEndian(entry);
                    _status[cid] = (ushort)(dw3 >> 17);
                    _state[cid] = Done;
                    _wake[cid].Release();
                }
                else if (_state[cid] == Abandoned)
                {
                    _state[cid] = Free;
                }
            }
            taken++;
            _cqHead++;
            if (_cqHead == (uint)Entries)
            {
                _cqHead = 0;
                _phase ^= 1;
            }
        }
        if (taken > 0)
        {
            _bar0.Write32(_cqDoorbell, _cqHead);
        }
    }
}
