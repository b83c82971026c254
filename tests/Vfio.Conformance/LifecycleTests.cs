// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;

namespace Vfio.Conformance;

/// <summary>Lifecycle abuse: a space disposed while another thread attaches into it.</summary>
public sealed class LifecycleTests
{
    private const int Rounds = 20;

    // Regression: a disposal racing an attach used to return a device "attached" to a released container of a disposed
    // space, with the group (legacy) or the IOAS (iommufd) left behind in the kernel. Now the attach either fails with
    // ObjectDisposedException or completes before the disposal, which then detaches it; either way the device can be
    // attached again at once.
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public async Task DisposingASpace_WhileAnotherThreadAttaches_LeavesNothingAttached(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        int attachedFirst = 0, refused = 0;
        for (int round = 0; round < Rounds; round++)
        {
            var space = new DmaSpace("racing");
            using var start = new Barrier(2);
            Task<AttachedDevice?> attach = Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                try
                {
                    return rig.Attach(Target.Edu, space);
                }
                catch (ObjectDisposedException e)
                {
                    e.Message.ShouldContain("racing");
                    return null;
                }
            }, TaskCreationOptions.LongRunning);
            start.SignalAndWait(TestContext.Current.CancellationToken);
            if (round % 2 == 1)
            {
                Thread.SpinWait(round * 50);
            }
            space.Dispose();
            // A hang fails here as a TimeoutException.
            AttachedDevice? device = await attach.WaitAsync(Rig.Timeout, TestContext.Current.CancellationToken);
            if (device is null)
            {
                refused++;
            }
            else
            {
                attachedFirst++;
                device.IsAttached.ShouldBeFalse($"round {round}: the device outlived its space's disposal");
                device.Container.IsReleased.ShouldBeTrue();
            }
            space.IsDisposed.ShouldBeTrue();
            space.Containers.ShouldBeEmpty();

            // Nothing of the race stays in the kernel: the group (or cdev) attaches again at once.
            DmaSpace next = rig.NewSpace();
            rig.Attach(Target.Edu, next).Dispose();
        }
        (attachedFirst + refused).ShouldBe(Rounds);
    }

    // Regression: a BAR mapping alive across detach kept the device open on Linux (the next attach failed, blaming
    // another opener) while the simulator failed the access and let the attach succeed. A detach now unmaps the
    // device's regions: the mapping says it is gone, and the device attaches again at once, on both kernels.
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void ABarMappingAcrossDetach_IsUnmapped_AndTheDeviceAttachesAgain(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        VfioRegionMapping bar0 = edu.Device.MapRegion(0);
        bar0.Read32(0).ShouldBe(Vfio.Samples.Edu.EduDriver.Identification);

        edu.Dispose();
        ObjectDisposedException e = Should.Throw<ObjectDisposedException>(() => bar0.Read32(0));
        e.Message.ShouldContain("detached");
        bar0.Dispose();   // the caller's own disposal is harmless

        using AttachedDevice again = rig.Attach(Target.Edu);
        using VfioRegionMapping bar0Again = again.Device.MapRegion(0);
        bar0Again.Read32(0).ShouldBe(Vfio.Samples.Edu.EduDriver.Identification);
    }

    // Regression: a wait on a device's interrupt never completed when the device was detached (or its space disposed,
    // or the host stopped); only disposing the event ended it. Now the detach ends it, and a later wait that finds
    // nothing pending fails at once, until the event is wired to a device again.
    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModesTwice), MemberType = typeof(Target))]
    public async Task AnInterruptWait_EndsWhenItsDeviceIsDetached_OrItsSpaceDisposed(Mode mode, bool disposeTheSpace)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice edu = rig.Attach(Target.Edu);
        using var msi = new InterruptEvent();
        edu.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [msi]);
        ValueTask<ulong> pending = msi.WaitAsync(TestContext.Current.CancellationToken);

        if (disposeTheSpace)
        {
            edu.Space.Dispose();
        }
        else
        {
            edu.Dispose();
        }
        ObjectDisposedException e = await Should.ThrowAsync<ObjectDisposedException>(
            pending.AsTask().WaitAsync(Rig.Timeout, TestContext.Current.CancellationToken));
        e.Message.ShouldContain(Target.Edu);
        e.Message.ShouldContain("detached");
        Should.Throw<ObjectDisposedException>(() => msi.TryWait(Rig.Timeout, out _));

        // Wired to the device attached again, the same event waits normally.
        using AttachedDevice again = rig.Attach(Target.Edu);
        again.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [msi]);
        again.Device.TriggerIrq(VfioPciIrq.Msi);
        (await msi.WaitAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(Rig.Timeout, TestContext.Current.CancellationToken)).ShouldBe(1UL);
    }
}
