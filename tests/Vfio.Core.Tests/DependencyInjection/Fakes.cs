// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Tests.Devices;
using Vfio.Core.Tests.Dma;

namespace Vfio.Core.Tests.DependencyInjection;

/// <summary>A backend that records calls: CanAttach answers as told, AttachDevice joins a fake container per space.</summary>
internal sealed class FakeBackend(string name, bool canAttach = true, string reason = "fine") : IIommuBackend, IDisposable
{
    private readonly Dictionary<DmaSpace, FakeDmaContainer> _containers = [];

    public string Name { get; } = name;
    public IommuBackendFeatures Features => IommuBackendFeatures.None;
    public bool CanAttachResult { get; set; } = canAttach;
    public string Reason { get; set; } = reason;
    public List<string> Calls { get; } = [];
    public int DisposeCalls { get; private set; }

    /// <summary>Shared log of dispose and detach events across fakes, to check teardown order.</summary>
    public List<string>? Events { get; set; }

    /// <summary>The machine whose <see cref="Node"/> decides <see cref="IsAvailable"/>; null: always available.</summary>
    public IKernel? Machine { get; init; }

    /// <summary>The kernel node the backend needs, e.g. <c>/dev/iommu</c>.</summary>
    public string? Node { get; init; }

    public bool IsAvailable(out string reason)
    {
        if (Machine is null || Node is null || Machine.Exists(Node))
        {
            reason = Node is null ? "it needs nothing" : Node + " exists";
            return true;
        }
        reason = Node + " does not exist";
        return false;
    }

    public bool CanAttach(VfioDeviceSource device, out string reason)
    {
        Calls.Add($"CanAttach {device.Name}");
        reason = Reason;
        return CanAttachResult;
    }

    public AttachedDevice AttachDevice(VfioDeviceSource device, DmaSpace space)
    {
        Calls.Add($"Attach {device.Name}");
        if (!_containers.TryGetValue(space, out FakeDmaContainer? container) || container.IsReleased)
        {
            container = new FakeDmaContainer(this, space, $"{Name} container");
            space.Join(container);
            _containers[space] = container;
        }
        var kernel = new FakeDeviceKernel();
        var attached = new FakeAttachedDevice(this, container, new VfioDevice(kernel, FakeDeviceKernel.OpenDeviceFd(), device.Name, ownsHandle: true), device);
        container.Add(attached);
        return attached;
    }

    public void DetachDevice(AttachedDevice device)
    {
        if (device is not FakeAttachedDevice fake || !ReferenceEquals(device.Backend, this))
        {
            throw new ArgumentException("not mine", nameof(device));
        }
        if (!fake.Detach())
        {
            return;
        }
        Calls.Add($"Detach {device.Name}");
        Events?.Add($"detach {device.Name}");
        device.Device.Dispose();
        var container = (FakeDmaContainer)device.Container;
        container.Remove(device);
        if (container.Devices.Count == 0)
        {
            device.Space.Leave(container);
        }
    }

    public void Dispose()
    {
        DisposeCalls++;
        Events?.Add($"dispose {Name}");
    }

    public override string ToString() => Name;
}

internal sealed class FakeAttachedDevice(IIommuBackend backend, DmaContainer container, VfioDevice device, VfioDeviceSource source)
    : AttachedDevice(backend, container, device, source)
{
    public override int? IommuGroup => 7;

    protected override HotResetProof CreateHotResetProof() => DeviceIdProof(7);

    public bool Detach() => MarkDetached();
}

/// <summary>A machine whose only trait is which paths exist.</summary>
internal sealed class FakeMachineKernel(params string[] paths) : IKernel
{
    public HashSet<string> Paths { get; } = [.. paths];

    public bool Exists(string path) => Paths.Contains(path);

    public int Open(string path, OpenFlags flags, out SafeFileHandle handle) => throw new NotSupportedException();
    public int Ioctl(SafeHandle fd, uint request, nint argument) => throw new NotSupportedException();
    public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => throw new NotSupportedException();
    public int Ioctl(SafeHandle fd, uint request, Span<byte> argument) => throw new NotSupportedException();
    public long PRead(SafeHandle fd, Span<byte> buffer, long offset) => throw new NotSupportedException();
    public long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset) => throw new NotSupportedException();
    public int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping) => throw new NotSupportedException();
    public int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping) => throw new NotSupportedException();
    public int MapAnonymous(ulong length, out MemoryMapping? mapping) => throw new NotSupportedException();
    public int LockMemory(MemoryMapping mapping) => throw new NotSupportedException();
    public int GetStatus(SafeHandle fd, out FileStatus status) => throw new NotSupportedException();
    public int ReadLink(string path, out string target) => throw new NotSupportedException();
    public int ReadText(string path, out string text) => throw new NotSupportedException();
    public int ListDirectory(string path, out string[] entries) => throw new NotSupportedException();
}

/// <summary>Collects every log entry of every category.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public List<(string Category, LogLevel Level, string Message)> Entries { get; } = [];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (owner.Entries)
            {
                owner.Entries.Add((category, logLevel, formatter(state, exception)));
            }
        }
    }
}
