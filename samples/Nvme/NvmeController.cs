// SPDX-License-Identifier: MIT
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Vfio.Core;
using Vfio.Devices.Pci;

namespace Vfio.Samples.Nvme;

/// <summary>What Identify Controller reports (the fields this driver uses).</summary>
/// <param name="VendorId">The PCI vendor id.</param>
/// <param name="Serial">The serial number.</param>
/// <param name="Model">The model number.</param>
/// <param name="Firmware">The firmware revision.</param>
/// <param name="MaxTransferPages">MDTS as a number of memory pages (0: no limit).</param>
/// <param name="NamespaceCount">The number of namespaces (NN).</param>
/// <param name="Version">The version (VER), e.g. 0x00010400 for 1.4.</param>
public sealed record NvmeControllerInfo(ushort VendorId, string Serial, string Model, string Firmware, int MaxTransferPages,
    uint NamespaceCount, uint Version);

/// <summary>What Identify Namespace reports (the fields this driver uses).</summary>
/// <param name="Id">The namespace id.</param>
/// <param name="Blocks">The size in logical blocks (NSZE).</param>
/// <param name="BlockSize">The logical block size of the formatted LBA format.</param>
public sealed record NvmeNamespaceInfo(uint Id, ulong Blocks, int BlockSize)
{
    /// <summary>The size in bytes.</summary>
    public ulong Bytes => Blocks * (ulong)BlockSize;
}

/// <summary>
/// A user-space NVMe driver on Devices.Pci: the controller disabled and enabled (CC.EN, CSTS.RDY within CAP.TO), the
/// admin queue (AQA/ASQ/ACQ), Identify Controller and Namespace, one I/O completion queue on its own MSI-X vector with
/// one I/O submission queue, Read/Write/Flush through DMA buffers, and a clean shutdown (queues deleted, controller
/// disabled). Admin commands run one at a time; up to <see cref="IoQueueDepth"/> I/O commands may be in flight at once
/// (call the I/O methods concurrently; more callers wait for a free slot within the command timeout). Every completion is awaited on its queue's MSI-X interrupt event with a timeout and the caller's
/// cancellation; an error status is an <see cref="NvmeCommandException"/> naming the command and the status.
/// </summary>
public sealed class NvmeController : IAsyncDisposable, IDisposable
{
    /// <summary>The memory page size the driver sets (CC.MPS 0).</summary>
    public const int PageSize = 4096;

    /// <summary>How many I/O commands may be in flight at once on the I/O queue pair (its 64 entries less one).</summary>
    public const int IoQueueDepth = IoEntries - 1;

    private const int AdminEntries = 32, IoEntries = 64, IoQueueId = 1;
    private const ulong Cap = 0x00, Vs = 0x08, Cc = 0x14, Csts = 0x1c, Aqa = 0x24, Asq = 0x28, Acq = 0x30;
    private readonly VfioPciDevice _pci;
    private readonly VfioRegionMapping _bar0;
    private readonly DmaSpace _space;
    private readonly int _doorbellStride;
    private readonly TimeSpan _readyTimeout;
    private NvmeQueuePair? _admin;
    private NvmeQueuePair? _io;
    private DmaBuffer? _scratch;    // page 1: Identify data (admin commands run one at a time)
    private int _maxTransferPages = 512;
    private bool _disposed;

    private NvmeController(VfioPciDevice pci, VfioRegionMapping bar0, TimeSpan commandTimeout)
    {
        _pci = pci;
        _bar0 = bar0;
        _space = pci.Attached.Space;
        CommandTimeout = commandTimeout;
        ulong cap = bar0.Read64(Cap);
        Capabilities = cap;
        _doorbellStride = 4 << (int)((cap >> 32) & 0xf);
        _readyTimeout = TimeSpan.FromMilliseconds(500 * Math.Max(1UL, (cap >> 24) & 0xff));
        Version = bar0.Read32(Vs);
    }

    /// <summary>The device's name.</summary>
    public string Name => _pci.Name;

    /// <summary>The device's PCI view.</summary>
    public VfioPciDevice Pci => _pci;

    /// <summary>The CAP register.</summary>
    public ulong Capabilities { get; }

    /// <summary>The VS register, e.g. 0x00010400 for NVMe 1.4.</summary>
    public uint Version { get; }

    /// <summary>How long CC.EN changes may take to show in CSTS.RDY (CAP.TO x 500 ms).</summary>
    public TimeSpan ReadyTimeout => _readyTimeout;

    /// <summary>How long one command may take before <see cref="NvmeTimeoutException"/>.</summary>
    public TimeSpan CommandTimeout { get; }

    /// <summary>True once the I/O queue pair exists.</summary>
    public bool HasIoQueues => _io is not null;

    /// <summary>
    /// Takes over the controller: memory space and bus mastering on, BAR0 mapped, the controller disabled (waiting for
    /// CSTS.RDY to clear), the admin queues set up, MSI-X enabled with two vectors (admin, I/O) and the controller
    /// enabled (waiting for CSTS.RDY).
    /// </summary>
    /// <param name="device">The attached controller (its DMA space is where the driver's queues and buffers live).</param>
    /// <param name="commandTimeout">How long one command may take; null for 10 s.</param>
    /// <returns>The enabled controller; dispose it (or <see cref="ShutdownAsync"/>) to release it.</returns>
    /// <exception cref="NvmeControllerException">The device is not an NVMe controller, or it did not become ready.</exception>
    public static NvmeController Open(AttachedDevice device, TimeSpan? commandTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        var pci = new VfioPciDevice(device);
        NvmeController? controller = null;
        try
        {
            if (pci.ClassCode != 0x010802)
            {
                throw new NvmeControllerException(pci.Name, $"class code 0x{pci.ClassCode:x6} is not an NVMe controller's (0x010802); give the address of an NVMe device bound to vfio-pci.");
            }
            pci.SetMemorySpace(true);
            pci.SetBusMaster(true);
            controller = new NvmeController(pci, pci.MapBar(VfioPciRegion.Bar0), commandTimeout ?? TimeSpan.FromSeconds(10));
            controller.Enable();
            return controller;
        }
        catch
        {
            if (controller is not null)
            {
                controller.Release();
            }
            else
            {
                pci.Dispose();
            }
            throw;
        }
    }

    /// <summary>Identify Controller (CNS 1).</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The controller's identity.</returns>
    public async Task<NvmeControllerInfo> IdentifyControllerAsync(CancellationToken cancellationToken = default)
    {
        DmaBuffer data = Scratch;
        await Admin.ExecuteAsync(new NvmeCommand("Identify Controller", 0x06) { Prp1 = data.Iova + PageSize, Cdw10 = 1 }, CommandTimeout, cancellationToken).ConfigureAwait(false);
        byte[] bytes = data.GetSpan(PageSize, 4096).ToArray();
        int mdts = bytes[77];
        var info = new NvmeControllerInfo(
            BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            Text(bytes.AsSpan(4, 20)),
            Text(bytes.AsSpan(24, 40)),
            Text(bytes.AsSpan(64, 8)),
            mdts == 0 ? 0 : 1 << mdts,
            BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(516)),
            BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(80)));
        // One PRP list page holds PageSize / 8 entries; MDTS may be lower.
        _maxTransferPages = info.MaxTransferPages == 0 ? PageSize / 8 : Math.Min(PageSize / 8, info.MaxTransferPages);
        return info;
    }

    /// <summary>Identify Namespace (CNS 0).</summary>
    /// <param name="namespaceId">The namespace id (1 for the first).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The namespace's size and block size.</returns>
    public async Task<NvmeNamespaceInfo> IdentifyNamespaceAsync(uint namespaceId = 1, CancellationToken cancellationToken = default)
    {
        DmaBuffer data = Scratch;
        await Admin.ExecuteAsync(new NvmeCommand("Identify Namespace", 0x06) { NamespaceId = namespaceId, Prp1 = data.Iova + PageSize, Cdw10 = 0 }, CommandTimeout, cancellationToken).ConfigureAwait(false);
        Span<byte> bytes = data.GetSpan(PageSize, 4096);
        ulong size = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (size == 0)
        {
            throw new NvmeControllerException(Name, $"namespace {namespaceId} is not active (Identify Namespace reports size 0); use namespace 1.");
        }
        int format = bytes[26] & 0xf;
        int lbads = bytes[128 + (4 * format) + 2];
        return new NvmeNamespaceInfo(namespaceId, size, 1 << lbads);
    }

    /// <summary>Creates the I/O completion queue (interrupts on MSI-X vector 1, or 0 when the host gave one vector)
    /// and the I/O submission queue that completes into it.</summary>
    /// <param name="cancellationToken">Cancels the waits.</param>
    public async Task CreateIoQueuesAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_io is not null)
        {
            throw new InvalidOperationException($"{Name} already has its I/O queue pair.");
        }
        int vector = Math.Min(1, _pci.Msix.VectorCount - 1);
        var io = new NvmeQueuePair(Name, IoQueueId, IoEntries, IoQueueDepth, prpLists: true, _space, _bar0, _pci.Msix, vector, _doorbellStride);
        try
        {
            uint size = ((uint)IoEntries - 1) << 16;
            await Admin.ExecuteAsync(new NvmeCommand("Create I/O Completion Queue", 0x05)
            {
                Prp1 = io.Completions.Iova, Cdw10 = size | IoQueueId, Cdw11 = ((uint)vector << 16) | 0x3,   // interrupts on, contiguous
            }, CommandTimeout, cancellationToken).ConfigureAwait(false);
            try
            {
                await Admin.ExecuteAsync(new NvmeCommand("Create I/O Submission Queue", 0x01)
                {
                    Prp1 = io.Submissions.Iova, Cdw10 = size | IoQueueId, Cdw11 = (IoQueueId << 16) | 0x1,   // its CQ, contiguous
                }, CommandTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await DeleteQueueAsync(0x04, "Delete I/O Completion Queue", CancellationToken.None).ConfigureAwait(false);
                throw;
            }
        }
        catch
        {
            io.Dispose();
            throw;
        }
        _io = io;
    }

    /// <summary>Writes <paramref name="blocks"/> blocks from <paramref name="buffer"/> at <paramref name="offset"/>.</summary>
    /// <param name="ns">The namespace.</param>
    /// <param name="lba">The first block.</param>
    /// <param name="blocks">How many blocks (1 to 65536, within the transfer limit).</param>
    /// <param name="buffer">The DMA buffer holding the data.</param>
    /// <param name="offset">Where in the buffer the data starts (a multiple of 4).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public Task WriteAsync(NvmeNamespaceInfo ns, ulong lba, int blocks, DmaBuffer buffer, ulong offset = 0, CancellationToken cancellationToken = default)
        => TransferAsync("Write", 0x01, ns, lba, blocks, buffer, offset, cancellationToken);

    /// <summary>Reads <paramref name="blocks"/> blocks into <paramref name="buffer"/> at <paramref name="offset"/>.</summary>
    /// <param name="ns">The namespace.</param>
    /// <param name="lba">The first block.</param>
    /// <param name="blocks">How many blocks (1 to 65536, within the transfer limit).</param>
    /// <param name="buffer">The DMA buffer receiving the data.</param>
    /// <param name="offset">Where in the buffer the data goes (a multiple of 4).</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public Task ReadAsync(NvmeNamespaceInfo ns, ulong lba, int blocks, DmaBuffer buffer, ulong offset = 0, CancellationToken cancellationToken = default)
        => TransferAsync("Read", 0x02, ns, lba, blocks, buffer, offset, cancellationToken);

    /// <summary>Flush: the namespace's volatile write cache to media.</summary>
    /// <param name="ns">The namespace.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public async Task FlushAsync(NvmeNamespaceInfo ns, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ns);
        await Io.ExecuteAsync(new NvmeCommand("Flush", 0x00) { NamespaceId = ns.Id }, CommandTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Submits any I/O command on the I/O queue (for commands this driver has no method for, and for tests
    /// of the controller's answers).</summary>
    /// <param name="command">The command.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The completion's dword 0.</returns>
    public Task<uint> ExecuteIoAsync(NvmeCommand command, CancellationToken cancellationToken = default)
        => Io.ExecuteAsync(command, CommandTimeout, cancellationToken).AsTask();

    /// <summary>Submits any admin command.</summary>
    /// <param name="command">The command.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The completion's dword 0.</returns>
    public Task<uint> ExecuteAdminAsync(NvmeCommand command, CancellationToken cancellationToken = default)
        => Admin.ExecuteAsync(command, CommandTimeout, cancellationToken).AsTask();

    /// <summary>A clean shutdown: the I/O submission queue then completion queue deleted, a normal shutdown
    /// notification (CC.SHN), the controller disabled, MSI-X disabled and every buffer freed. The device stays attached.</summary>
    /// <param name="cancellationToken">Cancels the waits (the controller is still disabled and released).</param>
    public async Task ShutdownAsync(CancellationToken cancellationToken = default)
    {
        if (_disposed)
        {
            return;
        }
        try
        {
            if (_io is not null)
            {
                await DeleteQueueAsync(0x00, "Delete I/O Submission Queue", cancellationToken).ConfigureAwait(false);
                await DeleteQueueAsync(0x04, "Delete I/O Completion Queue", cancellationToken).ConfigureAwait(false);
            }
            uint cc = _bar0.Read32(Cc);
            _bar0.Write32(Cc, (cc & ~(3u << 14)) | (1u << 14));   // normal shutdown notification
            WaitFor(() => ((_bar0.Read32(Csts) >> 2) & 3) == 2, "CSTS.SHST to report shutdown complete");
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Disables the controller without deleting queues first (a controller reset) and releases everything.</summary>
    public void Dispose() => Release();

    /// <inheritdoc/>
    public async ValueTask DisposeAsync() => await ShutdownAsync().ConfigureAwait(false);

    private NvmeQueuePair Admin => _admin ?? throw new ObjectDisposedException(nameof(NvmeController));

    private NvmeQueuePair Io => _io ?? throw new InvalidOperationException($"{Name} has no I/O queues: call CreateIoQueuesAsync first.");

    private DmaBuffer Scratch => _scratch ?? throw new ObjectDisposedException(nameof(NvmeController));

    private async Task TransferAsync(string name, byte opcode, NvmeNamespaceInfo ns, ulong lba, int blocks, DmaBuffer buffer, ulong offset, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ns);
        ArgumentNullException.ThrowIfNull(buffer);
        ulong length = (ulong)blocks * (ulong)ns.BlockSize;
        int pages = (int)(((offset % PageSize) + length + PageSize - 1) / PageSize);
        if (blocks is < 1 or > 65536 || pages > _maxTransferPages)
        {
            throw new ArgumentOutOfRangeException(nameof(blocks), blocks,
                $"An NVMe {name} on {Name} moves 1 to 65536 blocks within {_maxTransferPages} pages of {PageSize} bytes (MDTS and one PRP list page).");
        }
        if (offset % 4 != 0 || offset > buffer.Size || length > buffer.Size - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"The {length} bytes at offset {offset} must lie in the {buffer.Size}-byte buffer, dword aligned.");
        }
        NvmeQueuePair io = Io;
        ulong first = buffer.Iova + offset;
        ulong firstPage = first & ~(ulong)(PageSize - 1);
        // Two pages: PRP2 is the second; more: the queue writes a PRP list of the pages after the first into the list
        // page of the command's id.
        ulong prp2 = pages == 2 ? firstPage + PageSize : 0;
        var command = new NvmeCommand(name, opcode)
        {
            NamespaceId = ns.Id, Prp1 = first, Prp2 = prp2,
            Cdw10 = (uint)lba, Cdw11 = (uint)(lba >> 32), Cdw12 = (uint)(blocks - 1),
        };
        await io.ExecuteAsync(command, CommandTimeout, cancellationToken, firstPage + PageSize, pages > 2 ? pages - 1 : 0).ConfigureAwait(false);
    }

    private async Task DeleteQueueAsync(byte opcode, string name, CancellationToken cancellationToken)
        => await Admin.ExecuteAsync(new NvmeCommand(name, opcode) { Cdw10 = IoQueueId }, CommandTimeout, cancellationToken).ConfigureAwait(false);

    private void Enable()
    {
        if ((Capabilities & (1UL << 37)) == 0)
        {
            throw new NvmeControllerException(Name, "CAP.CSS does not offer the NVM command set.");
        }
        if (((Capabilities >> 48) & 0xf) != 0)
        {
            throw new NvmeControllerException(Name, $"CAP.MPSMIN is {(Capabilities >> 48) & 0xf}: the controller does not take {PageSize}-byte memory pages.");
        }
        Disable();
        // First in the space, so page 0 takes the lowest IOVA, which may be 0: it stays unused, as QEMU's nvme refuses
        // an ASQ or ACQ of 0 and an address of 0 reads as "unset" to many devices.
        _scratch = DmaBuffer.Allocate(_space, 2 * PageSize);
        _admin = new NvmeQueuePair(Name, 0, AdminEntries, depth: 1, prpLists: false, _space, _bar0, _pci.Msix, vector: 0, _doorbellStride);
        int vectors = _pci.Msix.Enable(2);
        if (vectors < 1)
        {
            throw new NvmeControllerException(Name, "the host gave no MSI-X vector; free interrupt vectors on the host.");
        }
        _bar0.Write32(Aqa, ((uint)(AdminEntries - 1) << 16) | (AdminEntries - 1));
        _bar0.Write64(Asq, _admin.Submissions.Iova);
        _bar0.Write64(Acq, _admin.Completions.Iova);
        _bar0.Write32(Cc, 1u | (6u << 16) | (4u << 20));   // EN; NVM command set, 4 KiB pages, round robin; 64-byte SQ and 16-byte CQ entries
        WaitFor(() => (_bar0.Read32(Csts) & 1) == 1, "CSTS.RDY to become 1 after CC.EN=1");
    }

    private void Disable()
    {
        if ((_bar0.Read32(Cc) & 1) != 0)
        {
            _bar0.Write32(Cc, 0);
        }
        WaitFor(() => (_bar0.Read32(Csts) & 1) == 0, "CSTS.RDY to become 0 after CC.EN=0", fatalAllowed: true);
    }

    private void WaitFor(Func<bool> done, string what, bool fatalAllowed = false)
    {
        long start = Stopwatch.GetTimestamp();
        while (!done())
        {
            uint csts = _bar0.Read32(Csts);
            if (!fatalAllowed && (csts & 2) != 0)
            {
                throw new NvmeControllerException(Name, $"the controller reports a fatal status (CSTS 0x{csts:x}) while waiting for {what}; check the admin queue setup, then disable and re-enable it.");
            }
            if (csts == uint.MaxValue)
            {
                throw new NvmeControllerException(Name, "BAR0 reads all ones: the device is gone or memory space is off.");
            }
            if (Stopwatch.GetElapsedTime(start) > _readyTimeout)
            {
                throw new NvmeControllerException(Name, $"timed out after {_readyTimeout.TotalSeconds:0.#} s (CAP.TO) waiting for {what} (CSTS 0x{csts:x}).");
            }
            Thread.Sleep(1);
        }
    }

    private void Release()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            Disable();
        }
        catch (NvmeControllerException)
        {
            // Best effort: the queues' memory is unmapped below whatever the controller says.
        }
        finally
        {
            if (_pci.Msix.IsEnabled)
            {
                _pci.Msix.Disable();
            }
            _pci.SetBusMaster(false);
            _io?.Dispose();
            _admin?.Dispose();
            _scratch?.Dispose();
            _io = _admin = null;
            _scratch = null;
            _pci.Dispose();
        }
    }

    private static string Text(ReadOnlySpan<byte> field) => Encoding.ASCII.GetString(field).TrimEnd(' ', '\0');
}
