// SPDX-License-Identifier: MIT
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Core.Interop;
using Vfio.Simulator;
using Vfio.Samples.Edu;

namespace Vfio.Backends.Legacy.Tests;

/// <summary>Machines and helpers for the legacy backend tests.</summary>
internal static class Kit
{
    internal const string Edu2 = "0000:00:02.0";
    internal const string Edu3 = "0000:00:03.0";
    internal const ulong EduMask = 0x0fff_ffff;

    /// <summary>Two edu devices, alone in groups 2 and 3, bound to vfio-pci.</summary>
    internal static SimulatedKernel TwoEdus(Action<SimulatedTopology>? configure = null)
    {
        var topology = new SimulatedTopology()
            .AddPci(Edu2, iommuGroup: 2, NewEdu())
            .AddPci(Edu3, iommuGroup: 3, NewEdu());
        configure?.Invoke(topology);
        return new SimulatedKernel(topology);
    }

    internal static EduDevice NewEdu() => new() { DmaDelay = TimeSpan.FromMilliseconds(1) };

    internal static VfioDeviceSource Source(string name) => VfioDeviceSource.Pci(name);

    /// <summary>Copies 1 KiB from <paramref name="from"/> into edu's buffer and back out to <paramref name="to"/>.</summary>
    internal static void EduRoundTrip(AttachedDevice edu, ulong from, ulong to)
    {
        using var driver = new EduDriver(edu, useMmap: true);
        driver.EnableBusMaster();
        driver.DmaToDevice(from, 0, 1024, s_eduTimeout);
        driver.DmaFromDevice(0, to, 1024, s_eduTimeout);
    }

    private static readonly TimeSpan s_eduTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Fills the first KiB of <paramref name="buffer"/> with a pattern and the second page's first KiB with
    /// zeros, runs the round trip page 0 → edu → page 1 and checks the bytes arrived.</summary>
    internal static void RoundTripThrough(AttachedDevice edu, DmaBuffer buffer)
    {
        ulong iova = buffer.Iova;
        byte[] pattern = Pattern();
        pattern.CopyTo(buffer.Span);
        buffer.Span.Slice(4096, 1024).Clear();
        EduRoundTrip(edu, iova, iova + 4096);
        buffer.Span.Slice(4096, 1024).ToArray().ShouldBe(pattern);
    }

    internal static byte[] Pattern()
    {
        byte[] pattern = new byte[1024];
        for (int i = 0; i < pattern.Length; i++)
        {
            pattern[i] = (byte)((i * 7) + 3);
        }
        return pattern;
    }

    internal static int ProcessFdCount() => Directory.GetFileSystemEntries("/proc/self/fd").Length;

    /// <summary>A connected pair of Unix stream sockets.</summary>
    internal static (Socket A, Socket B) SocketPair()
    {
        string path = Path.Combine(Path.GetTempPath(), $"legacy-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        a.Connect(new UnixDomainSocketEndPoint(path));
        Socket b = listener.Accept();
        File.Delete(path);
        return (a, b);
    }
}

/// <summary>A logger that keeps what it is given.</summary>
internal sealed class ListLogger : ILogger
{
    private readonly List<(LogLevel Level, string Message)> _entries = [];

    internal IReadOnlyList<(LogLevel Level, string Message)> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_entries)
        {
            _entries.Add((logLevel, formatter(state, exception)));
        }
    }
}

/// <summary>A kernel port that forwards to another but answers <c>VFIO_CHECK_EXTENSION</c> as a sPAPR host would
/// (the simulator models no sPAPR TCE backend).</summary>
internal sealed class SpaprLikeKernel(IKernel inner) : IKernel
{
    public int Open(string path, OpenFlags flags, out SafeFileHandle handle) => inner.Open(path, flags, out handle);

    public int Ioctl(SafeHandle fd, uint request, nint argument)
    {
        if (request == VfioUapi.VFIO_CHECK_EXTENSION)
        {
            return (uint)argument is VfioUapi.VFIO_SPAPR_TCE_v2_IOMMU or VfioUapi.VFIO_SPAPR_TCE_IOMMU ? 1 : 0;
        }
        return inner.Ioctl(fd, request, argument);
    }

    public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => inner.Ioctl(fd, request, argument);

    public int Ioctl(SafeHandle fd, uint request, Span<byte> argument) => inner.Ioctl(fd, request, argument);

    public long PRead(SafeHandle fd, Span<byte> buffer, long offset) => inner.PRead(fd, buffer, offset);

    public long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset) => inner.PWrite(fd, buffer, offset);

    public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping)
        => inner.Map(fd, offset, length, protection, out mapping);

    public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping)
        => inner.MapAligned(fd, offset, length, protection, alignment, out mapping);

    public int MapAnonymous(ulong length, out MemoryMapping? mapping) => inner.MapAnonymous(length, out mapping);

    public int LockMemory(MemoryMapping mapping) => inner.LockMemory(mapping);

    public int GetStatus(SafeHandle fd, out FileStatus status) => inner.GetStatus(fd, out status);

    public int ReadLink(string path, out string target) => inner.ReadLink(path, out target);

    public int ReadText(string path, out string text) => inner.ReadText(path, out text);

    public int ListDirectory(string path, out string[] entries) => inner.ListDirectory(path, out entries);

    public bool Exists(string path) => inner.Exists(path);
}
