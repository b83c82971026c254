// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Platform;

/// <summary>
/// A vfio-platform (or AMBA) device over an attached <see cref="VfioDevice"/>: its regions (MMIO, mapped where the
/// kernel allows, or PIO) and its IRQs (level with automasking, or edge), and optionally the end-of-interrupt
/// emulation of a host that emulates an interrupt controller (<see cref="StartEoiEmulation"/>).
/// </summary>
/// <remarks>The device stays its backend's: disposing this object disables the IRQs and unmaps the regions it mapped,
/// and leaves the device open.</remarks>
public sealed class VfioPlatformDevice : IDisposable
{
    private readonly VfioPlatformRegion[] _regions;
    private readonly VfioPlatformIrq[] _irqs;
    private EoiEmulation? _eoi;
    private volatile bool _disposed;

    /// <summary>Reads the regions and IRQs of <paramref name="device"/>.</summary>
    /// <param name="device">An attached device whose kernel driver is vfio-platform or vfio-amba.</param>
    /// <exception cref="ArgumentException">The device is not a platform device (e.g. vfio-pci).</exception>
    /// <exception cref="VfioException">The kernel refused a region or IRQ query.</exception>
    public VfioPlatformDevice(VfioDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (!device.Info.IsPlatform)
        {
            throw new ArgumentException($"{device.Name} is not a platform device (flags {device.Info.Flags}): VfioPlatformDevice needs one bound to vfio-platform or vfio-amba; use the PCI API for vfio-pci devices.", nameof(device));
        }
        Device = device;
        _regions = new VfioPlatformRegion[device.Info.RegionCount];
        for (int i = 0; i < _regions.Length; i++)
        {
            _regions[i] = new VfioPlatformRegion(this, device.GetRegion(i));
        }
        _irqs = new VfioPlatformIrq[device.Info.IrqCount];
        for (int i = 0; i < _irqs.Length; i++)
        {
            _irqs[i] = new VfioPlatformIrq(this, device.GetIrq(i));
        }
    }

    /// <summary>The underlying device.</summary>
    public VfioDevice Device { get; }

    /// <summary>The device's name.</summary>
    public string Name => Device.Name;

    /// <summary>The regions, by index.</summary>
    public IReadOnlyList<VfioPlatformRegion> Regions => _regions;

    /// <summary>The IRQs, by index.</summary>
    public IReadOnlyList<VfioPlatformIrq> Irqs => _irqs;

    /// <summary>The end-of-interrupt state machine while <see cref="StartEoiEmulation"/> runs; null otherwise.</summary>
    public PlatformEoiStateMachine? EoiStateMachine => Volatile.Read(ref _eoi)?.Machine;

    internal bool IsDisposed => _disposed;

    /// <summary>Returns region <paramref name="index"/>.</summary>
    /// <param name="index">The region index.</param>
    /// <returns>The region.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The device has no such region.</exception>
    public VfioPlatformRegion GetRegion(int index)
    {
        if ((uint)index >= (uint)_regions.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_regions.Length} region(s); region {index} does not exist. Use an index below {_regions.Length}.");
        }
        return _regions[index];
    }

    /// <summary>Returns IRQ <paramref name="index"/>.</summary>
    /// <param name="index">The IRQ index.</param>
    /// <returns>The IRQ.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The device has no such IRQ.</exception>
    public VfioPlatformIrq GetIrq(int index)
    {
        if ((uint)index >= (uint)_irqs.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"{Name} has {_irqs.Length} IRQ(s); IRQ {index} does not exist. Use an index below {_irqs.Length}.");
        }
        return _irqs[index];
    }

    /// <summary>
    /// Starts the end-of-interrupt emulation over the enabled IRQs: each interrupt goes through a
    /// <see cref="PlatformEoiStateMachine"/> (one active at a time, the others queued), the next access to any region
    /// ends the active one (a level IRQ is unmasked then), and the regions use the slow path (pread/pwrite) from an
    /// interrupt until a quiet period passes with none active.
    /// </summary>
    /// <param name="host">The emulated interrupt controller: it is told of injections and completions (the unmask is
    /// done before <see cref="IPlatformEoiHost.Complete"/>) and of the path switches.</param>
    /// <param name="quietPeriod">The quiet period; null for <see cref="PlatformEoiStateMachine.DefaultQuietPeriod"/>.</param>
    /// <param name="timeProvider">The clock of the quiet period; null for <see cref="TimeProvider.System"/>.</param>
    /// <exception cref="InvalidOperationException">The emulation runs already, or no IRQ is enabled.</exception>
    public void StartEoiEmulation(IPlatformEoiHost host, TimeSpan? quietPeriod = null, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_irqs.Length == 0 || !Array.Exists(_irqs, irq => irq.IsEnabled))
        {
            throw new InvalidOperationException($"{Name} has no enabled IRQ; Enable its IRQs before starting the end-of-interrupt emulation.");
        }
        var eoi = new EoiEmulation(this, host, quietPeriod ?? PlatformEoiStateMachine.DefaultQuietPeriod, timeProvider ?? TimeProvider.System);
        if (Interlocked.CompareExchange(ref _eoi, eoi, null) is not null)
        {
            eoi.Machine.Dispose();
            throw new InvalidOperationException($"{Name}: the end-of-interrupt emulation runs already.");
        }
        eoi.Start();
    }

    /// <summary>Stops the end-of-interrupt emulation (waits for its interrupt loops to end); regions return to the fast
    /// path. Does nothing when it does not run.</summary>
    public void StopEoiEmulation() => Interlocked.Exchange(ref _eoi, null)?.Stop();

    /// <summary>Stops the emulation, disables the IRQs and unmaps the regions; the device stays open.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        StopEoiEmulation();
        _disposed = true;
        foreach (VfioPlatformIrq irq in _irqs)
        {
            irq.Disable();
        }
        foreach (VfioPlatformRegion region in _regions)
        {
            region.Unmap();
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"platform device {Name}: {_regions.Length} region(s), {_irqs.Length} IRQ(s)";

    /// <summary>Whether region accesses may use the mappings: always, unless the emulation has them on the slow path.</summary>
    internal bool IsFastPath => Volatile.Read(ref _eoi) is not { FastPath: false };

    /// <summary>A region access is done: the end of interrupt of the active IRQ when the emulation runs.</summary>
    internal void AfterRegionAccess() => Volatile.Read(ref _eoi)?.Machine.RegionAccess();

    /// <summary>The running emulation: the state machine, one wait loop per enabled IRQ, and the path flag.</summary>
    private sealed class EoiEmulation : IPlatformEoiHost
    {
        private readonly VfioPlatformDevice _device;
        private readonly IPlatformEoiHost _host;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _loops = [];
        private volatile bool _fastPath = true;

        internal EoiEmulation(VfioPlatformDevice device, IPlatformEoiHost host, TimeSpan quietPeriod, TimeProvider timeProvider)
        {
            _device = device;
            _host = host;
            Machine = new PlatformEoiStateMachine(device._irqs.Length, this, timeProvider, quietPeriod);
        }

        internal PlatformEoiStateMachine Machine { get; }

        internal bool FastPath => _fastPath;

        internal void Start()
        {
            foreach (VfioPlatformIrq irq in _device._irqs)
            {
                if (irq.IsEnabled)
                {
                    _loops.Add(Task.Run(() => ForwardAsync(irq)));
                }
            }
        }

        internal void Stop()
        {
            _stop.Cancel();
            try
            {
                Task.WaitAll([.. _loops]);
            }
            catch (AggregateException e) when (e.InnerExceptions.All(x => x is OperationCanceledException or ObjectDisposedException or InvalidOperationException))
            {
                // The loops end by cancellation, or because their IRQ was disabled under them.
            }
            Machine.Dispose();
            _stop.Dispose();
        }

        public void Inject(int irq) => _host.Inject(irq);

        public void Complete(int irq)
        {
            VfioPlatformIrq line = _device._irqs[irq];
            if (line.IsLevelTriggered && line.IsEnabled)
            {
                line.Unmask();
            }
            _host.Complete(irq);
        }

        public void SetFastPath(bool enabled)
        {
            _fastPath = enabled;
            _host.SetFastPath(enabled);
        }

        private async Task ForwardAsync(VfioPlatformIrq irq)
        {
            while (!_stop.IsCancellationRequested)
            {
                await irq.WaitAsync(_stop.Token).ConfigureAwait(false);
                Machine.Interrupt(irq.Index);
            }
        }
    }
}
