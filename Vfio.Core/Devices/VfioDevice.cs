// SPDX-License-Identifier: MIT
using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Vfio.Core.Interop;

namespace Vfio.Core;

/// <summary>
/// An open VFIO device of any bus (vfio-pci, vfio-platform, ...): its info, regions (pread/pwrite and mmap),
/// interrupts (<c>VFIO_DEVICE_SET_IRQS</c>), reset and device features, over the kernel port.
/// </summary>
/// <remarks>
/// <para>
/// Backends create it from the device fd they obtained (<c>VFIO_GROUP_GET_DEVICE_FD</c>, or a bound cdev); the bus
/// layers (<c>Vfio.Devices.Pci</c>, <c>Vfio.Devices.Platform</c>) build on it. The constructor reads
/// <c>VFIO_DEVICE_GET_INFO</c>; region infos are read on first use and cached, so register accesses after the first
/// one neither allocate nor issue extra ioctls.
/// </para>
/// <para>
/// Every kernel failure is a <see cref="VfioException"/> naming the ioctl and the device (and region or IRQ index);
/// misuse raises the standard .NET exceptions. Mappings made by <see cref="MapRegion(int)"/> are independent objects
/// the caller disposes; they stay valid after the device is disposed.
/// </para>
/// </remarks>
/// <example>
/// <code>
/// using var device = new VfioDevice(LinuxKernel.Instance, deviceFd, "0000:00:02.0", ownsHandle: true);
/// uint id = device.ReadRegion32(0, 0x00);
/// using var msi = new InterruptEvent();
/// device.SetIrqEventFds(1, 0, [msi]);
/// </code>
/// </example>
public sealed partial class VfioDevice : IDisposable
{
    /// <summary>Info buffers up to this size live on the stack; larger ones are rented.</summary>
    private const int InfoStackBytes = 512;

    /// <summary>The largest info buffer the library accepts from the kernel's <c>argsz</c> (a sanity bound).</summary>
    private const uint MaxInfoBytes = 1 << 20;

    /// <summary>How many times an info ioctl is re-issued while the kernel keeps asking for a larger buffer.</summary>
    private const int MaxInfoAttempts = 4;

    /// <summary>Region infos cached by index, at most this many.</summary>
    private const int MaxCachedRegions = 256;

    private readonly IKernel _kernel;
    private readonly SafeFileHandle _fd;
    private readonly bool _ownsHandle;
    private readonly VfioRegionInfo?[] _regions;
    // The region mappings still mapped: the device's disposal (its detach) unmaps them, because on Linux a mapping
    // keeps the device file open, and with it the group or cdev, so the next attach would fail.
    private readonly List<VfioRegionMapping> _mappings = [];
    // The interrupt events wired to the device's IRQs: its disposal ends their waits, which no interrupt can end any
    // more (each event ignores it when it was wired to another device since).
    private readonly List<InterruptEvent> _wiredEvents = [];
    private readonly Lock _mappingsLock = new();
    private volatile bool _disposed;

    /// <summary>Wraps an open device fd and reads its info (<c>VFIO_DEVICE_GET_INFO</c>).</summary>
    /// <param name="kernel">The kernel port the fd belongs to.</param>
    /// <param name="deviceFd">The device fd (from <c>VFIO_GROUP_GET_DEVICE_FD</c> or a bound and attached cdev).</param>
    /// <param name="name">The device's name for messages, e.g. its PCI address <c>0000:00:02.0</c>.</param>
    /// <param name="ownsHandle">True to close <paramref name="deviceFd"/> when this object is disposed (and when the
    /// constructor fails); false to leave it to the caller, who must keep it open for this object's lifetime.</param>
    /// <exception cref="ArgumentException"><paramref name="deviceFd"/> is closed or invalid, or <paramref name="name"/> is empty.</exception>
    /// <exception cref="VfioException"><c>VFIO_DEVICE_GET_INFO</c> failed or returned a malformed capability chain.</exception>
    public VfioDevice(IKernel kernel, SafeFileHandle deviceFd, string name, bool ownsHandle)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(deviceFd);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (deviceFd.IsInvalid || deviceFd.IsClosed)
        {
            throw new ArgumentException("The device fd is closed or invalid.", nameof(deviceFd));
        }
        _kernel = kernel;
        _fd = deviceFd;
        _ownsHandle = ownsHandle;
        Name = name;
        try
        {
            Info = ReadInfo();
        }
        catch
        {
            if (ownsHandle)
            {
                deviceFd.Dispose();
            }
            throw;
        }
        _regions = new VfioRegionInfo?[Math.Min(Info.RegionCount, MaxCachedRegions)];
    }

    /// <summary>The device's name, as given by the backend (used in every error message).</summary>
    public string Name { get; }

    /// <summary>The device info read when the object was created.</summary>
    public VfioDeviceInfo Info { get; }

    /// <summary>The kernel port this device's calls go through (for bus-specific ioctls issued by device layers).</summary>
    public IKernel Kernel => _kernel;

    /// <summary>The device fd, for bus-specific ioctls (hot reset, ioeventfds). It stays owned as given to the
    /// constructor.</summary>
    /// <exception cref="ObjectDisposedException">The device is disposed.</exception>
    public SafeFileHandle Handle
    {
        get
        {
            ThrowIfDisposed();
            return _fd;
        }
    }

    /// <summary>
    /// Resets the device (<c>VFIO_DEVICE_RESET</c>): for vfio-pci a function-level reset, during which the kernel
    /// zaps every BAR mapping (they fault back in afterwards).
    /// </summary>
    /// <remarks>
    /// The kernel is always asked, also when <see cref="VfioDeviceInfo.SupportsReset"/> is false: it answers
    /// <c>EINVAL</c> then (vfio-pci without a working function reset, vfio-platform without a reset handler), and
    /// the exception's hint says so. The flag and the kernel's check are the same condition, so this costs nothing
    /// and keeps the kernel's (and a kernel model's) word final.
    /// </remarks>
    /// <exception cref="VfioException">The reset failed (<c>EINVAL</c>: no reset method; <c>EAGAIN</c>: lock contention).</exception>
    public void Reset()
    {
        ThrowIfDisposed();
        using Activity? activity = VfioTelemetry.Start("vfio.device.reset", backend: null, Name);
        int rc = _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_RESET, 0);
        if (rc < 0)
        {
            string? hint = rc == -(int)Errno.EINVAL && !Info.SupportsReset
                ? "The device reports no function reset (VFIO_DEVICE_FLAGS_RESET is clear): reset it another way, e.g. a PCI hot reset of its slot or bus."
                : null;
            var error = new VfioException((Errno)(-rc), "VFIO_DEVICE_RESET", Name, hint);
            VfioTelemetry.Fail(activity, error);
            throw error;
        }
    }

    /// <summary>Asks whether the device implements <paramref name="feature"/> with the access given
    /// (<c>VFIO_DEVICE_FEATURE</c> with <c>PROBE</c>; no data is read or written).</summary>
    /// <param name="feature">The feature index (<c>VFIO_DEVICE_FEATURE_*</c>, at most 0xFFFF).</param>
    /// <param name="access">The access to test; <see cref="VfioFeatureAccess.None"/> tests that the feature exists.</param>
    /// <returns>True when supported; false when the kernel answers <c>ENOTTY</c> (feature not implemented) or
    /// <c>EINVAL</c> (access not supported, or a bus driver without device features).</returns>
    /// <exception cref="VfioException">Another failure (e.g. <c>EIO</c> when the device cannot be resumed).</exception>
    public bool ProbeFeature(uint feature, VfioFeatureAccess access)
    {
        uint flags = FeatureFlags(feature, access) | VfioUapi.VFIO_DEVICE_FEATURE_PROBE;
        int rc = FeatureCore(flags, [], copyBack: false);
        if (rc == -(int)Errno.ENOTTY || rc == -(int)Errno.EINVAL)
        {
            return false;
        }
        ThrowFeature(rc, feature);
        return true;
    }

    /// <summary>Reads <paramref name="feature"/> into <paramref name="data"/> (<c>VFIO_DEVICE_FEATURE</c> with <c>GET</c>).</summary>
    /// <param name="feature">The feature index.</param>
    /// <param name="data">The payload buffer, sized as the feature's structure; the kernel fills it.</param>
    /// <exception cref="VfioException">The kernel refused (<c>ENOTTY</c>: not implemented; <c>EINVAL</c>: GET not supported or buffer too small).</exception>
    public void GetFeature(uint feature, Span<byte> data)
        => ThrowFeature(FeatureCore(FeatureFlags(feature, VfioFeatureAccess.Get), data, copyBack: true), feature);

    /// <summary>Writes <paramref name="feature"/> from <paramref name="data"/> (<c>VFIO_DEVICE_FEATURE</c> with
    /// <c>SET</c>); what the kernel writes back (e.g. <c>MIG_DEVICE_STATE</c>'s <c>data_fd</c>) is copied into
    /// <paramref name="data"/>.</summary>
    /// <param name="feature">The feature index.</param>
    /// <param name="data">The payload; empty for features without one (e.g. <c>LOW_POWER_EXIT</c>).</param>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public void SetFeature(uint feature, Span<byte> data)
        => ThrowFeature(FeatureCore(FeatureFlags(feature, VfioFeatureAccess.Set), data, copyBack: true), feature);

    /// <summary>Unmaps the region mappings made from the device that are still mapped (accesses through them then
    /// throw <see cref="ObjectDisposedException"/>; an access in flight on another thread is waited for, up to a
    /// second, because a mapping holds the device open, and so is a call in flight on the device fd; an <see cref="MmioWindow"/> open on one keeps its memory, and
    /// the device open in the kernel, until the window is disposed), ends the waits of the interrupt events still wired to it with
    /// <see cref="ObjectDisposedException"/> (no interrupt can reach them any more), then closes the device fd when it
    /// is owned.</summary>
    public void Dispose()
    {
        VfioRegionMapping[] mappings;
        InterruptEvent[] events;
        lock (_mappingsLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            mappings = [.. _mappings];
            _mappings.Clear();
            events = [.. _wiredEvents];
            _wiredEvents.Clear();
        }
        foreach (VfioRegionMapping mapping in mappings)
        {
            mapping.Dispose();
        }
        foreach (InterruptEvent wired in events)
        {
            wired.OnDeviceDetached(this, Name);
        }
        if (_ownsHandle)
        {
            _fd.Dispose();
        }
        WaitUntilReleased(mappings, _ownsHandle ? _fd : null);
    }

    /// <inheritdoc/>
    public override string ToString() => $"VFIO device {Name}";

    /// <summary>How long <see cref="Dispose"/> waits for calls in flight on other threads to let go of the device fd
    /// and of the region mappings it unmapped.</summary>
    internal static readonly TimeSpan ReleaseWait = TimeSpan.FromSeconds(1);

    // The device stays open in the kernel while anything holds its file: a region's mapping (an accessor on another
    // thread between its check and its load keeps it mapped) or the fd itself (a SafeHandle disposed while another
    // thread is inside a pread or ioctl on it closes when that call returns). Attaching the device again in that window
    // is refused (EBUSY, EINVAL) or, on iommufd's compat group path, gets the lingering open with its interrupt and
    // container state. Such a call is one syscall or one load: wait for it, bounded (an MmioWindow the caller left
    // open holds its mapping until it is disposed, which no wait here can shorten). A SafeHandle reports closed just
    // before its last holder calls close(2): the yield after a wait gives that holder its last step; it narrows that
    // gap to the close call itself, it does not prove it ended.
    private static void WaitUntilReleased(VfioRegionMapping[] mappings, SafeHandle? fd)
    {
        long deadline = 0;
        SpinWait spin = default;
        bool waited = false;
        foreach (VfioRegionMapping mapping in mappings)
        {
            while (!mapping.IsUnmapped && Spin(ref deadline, ref spin))
            {
                waited = true;
            }
        }
        while (fd is { IsClosed: false } && Spin(ref deadline, ref spin))
        {
            waited = true;
        }
        if (waited && fd is not null)
        {
            Thread.Yield();
        }

        static bool Spin(ref long deadline, ref SpinWait spin)
        {
            long now = Environment.TickCount64;
            if (deadline == 0)
            {
                deadline = now + (long)ReleaseWait.TotalMilliseconds;
            }
            else if (now >= deadline)
            {
                return false;
            }
            spin.SpinOnce(sleep1Threshold: 20);
            return true;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Records a new region mapping so that the device's disposal unmaps it; a device disposed meanwhile
    /// unmaps it at once.</summary>
    private VfioRegionMapping Track(VfioRegionMapping mapping)
    {
        lock (_mappingsLock)
        {
            if (!_disposed)
            {
                _mappings.Add(mapping);
                return mapping;
            }
        }
        mapping.Dispose();
        throw new ObjectDisposedException(ToString());
    }

    /// <summary>Wires <paramref name="wired"/> to this device and remembers it for the disposal; allocation-free once
    /// the event is known (re-wiring the same events is a hot path for MSI-X vector changes).</summary>
    private void TrackWired(InterruptEvent wired)
    {
        wired.WireTo(this);
        lock (_mappingsLock)
        {
            if (_disposed || _wiredEvents.Contains(wired))
            {
                return;
            }
            if (_wiredEvents.Count == _wiredEvents.Capacity && _wiredEvents.Count > 0)
            {
                // Before growing, forget the events that were disposed or wired elsewhere since.
                _wiredEvents.RemoveAll(static e => e.IsDisposed);
            }
            _wiredEvents.Add(wired);
        }
    }

    private void Untrack(VfioRegionMapping mapping)
    {
        lock (_mappingsLock)
        {
            _mappings.Remove(mapping);
        }
    }

    private VfioDeviceInfo ReadInfo()
    {
        const string Operation = "VFIO_DEVICE_GET_INFO";
        int fixedSize = Unsafe.SizeOf<vfio_device_info>();
        Span<byte> stack = stackalloc byte[InfoStackBytes];
        byte[]? rented = null;
        try
        {
            uint argsz = (uint)fixedSize;
            for (int attempt = 1; ; attempt++)
            {
                Span<byte> buffer = InfoBuffer(argsz, stack, ref rented);
                MemoryMarshal.Write(buffer, new vfio_device_info { argsz = argsz });
                int rc = _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_GET_INFO, buffer);
                if (rc < 0)
                {
                    VfioException.Throw(rc, Operation, Name);
                }
                vfio_device_info info = MemoryMarshal.Read<vfio_device_info>(buffer);
                if ((info.flags & VfioUapi.VFIO_DEVICE_FLAGS_CAPS) != 0 && info.argsz > argsz)
                {
                    argsz = GrowInfo(info.argsz, attempt, Operation, Name);
                    continue;
                }
                IReadOnlyList<VfioCapability> capabilities = (info.flags & VfioUapi.VFIO_DEVICE_FLAGS_CAPS) != 0
                    ? VfioCapabilityChain.Parse(buffer, fixedSize, info.cap_offset, Operation, Name)
                    : [];
                VfioPciAtomicCompleter? atomics = null;
                if (VfioCapabilityChain.Find(capabilities, VfioUapi.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP) is { } atomic)
                {
                    ReadOnlySpan<byte> bytes = VfioCapabilityChain.Require(atomic, 16, "PCI_ATOMIC_COMP", Operation, Name);
                    atomics = (VfioPciAtomicCompleter)VfioCapabilityChain.ReadUInt32(bytes, 8);
                }
                return new VfioDeviceInfo((VfioDeviceFlags)info.flags, ToCount(info.num_regions, "num_regions", Operation),
                    ToCount(info.num_irqs, "num_irqs", Operation), capabilities, atomics);
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The buffer for an info ioctl of <paramref name="size"/> bytes: the stack buffer when it fits, else
    /// a rented array (replacing a smaller one rented before). Cleared.</summary>
    private static Span<byte> InfoBuffer(uint size, Span<byte> stack, ref byte[]? rented)
    {
        Span<byte> buffer;
        if (size <= (uint)stack.Length)
        {
            buffer = stack[..(int)size];
        }
        else
        {
            if (rented is null || rented.Length < size)
            {
                if (rented is not null)
                {
                    ArrayPool<byte>.Shared.Return(rented);
                }
                rented = ArrayPool<byte>.Shared.Rent((int)size);
            }
            buffer = rented.AsSpan(0, (int)size);
        }
        buffer.Clear();
        return buffer;
    }

    /// <summary>Checks the larger <c>argsz</c> the kernel asked for.</summary>
    private static uint GrowInfo(uint requested, int attempt, string operation, string objectName)
    {
        if (requested > MaxInfoBytes)
        {
            throw new VfioException(operation, objectName, $"the kernel asks for a {requested}-byte buffer, more than the {MaxInfoBytes} bytes accepted");
        }
        if (attempt >= MaxInfoAttempts)
        {
            throw new VfioException(operation, objectName, $"the kernel still asks for a larger buffer ({requested} bytes) after {attempt} attempts");
        }
        return requested;
    }

    private int ToCount(uint value, string field, string operation)
        => value <= int.MaxValue ? (int)value : throw new VfioException(operation, Name, $"implausible {field} {value}");

    private static uint FeatureFlags(uint feature, VfioFeatureAccess access)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(feature, VfioUapi.VFIO_DEVICE_FEATURE_MASK);
        if ((access & ~(VfioFeatureAccess.Get | VfioFeatureAccess.Set)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(access), access, "Only Get and Set are defined.");
        }
        uint flags = feature;
        if ((access & VfioFeatureAccess.Get) != 0)
        {
            flags |= VfioUapi.VFIO_DEVICE_FEATURE_GET;
        }
        if ((access & VfioFeatureAccess.Set) != 0)
        {
            flags |= VfioUapi.VFIO_DEVICE_FEATURE_SET;
        }
        return flags;
    }

    private int FeatureCore(uint flags, Span<byte> data, bool copyBack)
    {
        ThrowIfDisposed();
        const int StackBytes = 256;
        int size = vfio_device_feature.data_offset + data.Length;
        byte[]? rented = null;
        Span<byte> buffer = size <= StackBytes ? stackalloc byte[StackBytes] : (rented = ArrayPool<byte>.Shared.Rent(size));
        try
        {
            buffer = buffer[..size];
            MemoryMarshal.Write(buffer, new vfio_device_feature { argsz = (uint)size, flags = flags });
            data.CopyTo(buffer[vfio_device_feature.data_offset..]);
            int rc = _kernel.Ioctl(_fd, VfioUapi.VFIO_DEVICE_FEATURE, buffer);
            if (rc >= 0 && copyBack)
            {
                buffer[vfio_device_feature.data_offset..].CopyTo(data);
            }
            return rc;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private void ThrowFeature(int rc, uint feature)
    {
        if (rc < 0)
        {
            VfioException.Throw(rc, "VFIO_DEVICE_FEATURE", $"{Name} feature {feature}");
        }
    }
}
