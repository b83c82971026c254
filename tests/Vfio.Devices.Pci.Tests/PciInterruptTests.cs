// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Devices.Pci.Tests;

/// <summary>INTx, MSI, MSI-X and the ERR/REQ notifications of <see cref="VfioPciDevice"/> on the simulated testbed:
/// edu (INTx pin A, one MSI vector), the NVMe controller at 00:03.0 (65 MSI-X vectors, PCI Express; MsixTestDevice there where a test makes it send a vector) and
/// <see cref="InterruptTestDevice"/>.</summary>
public sealed class PciInterruptTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_quiet = TimeSpan.FromMilliseconds(50);

    [Fact]
    public void Intx_pin_from_config_fires_and_is_held_until_end_of_interrupt()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        PciIntx intx = edu.Intx;
        intx.Pin.ShouldBe((byte)1);
        intx.PinName.ShouldBe("INTA");
        intx.IsAvailable.ShouldBeTrue();

        intx.Enable();
        edu.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        intx.UsesUnmaskEventFd.ShouldBeTrue();
        for (int i = 0; i < 3; i++)
        {
            RaiseEdu(edu);
            intx.TryWait(s_timeout, out ulong count).ShouldBeTrue($"INTx {i}");
            count.ShouldBe(1UL);
            AckEdu(edu);
            intx.EndOfInterrupt();
        }
        // Not acknowledged at the device: end of interrupt signals it again (the line is still asserted).
        RaiseEdu(edu);
        intx.TryWait(s_timeout, out _).ShouldBeTrue();
        intx.EndOfInterrupt();
        intx.TryWait(s_timeout, out _).ShouldBeTrue("still asserted after the end of interrupt");
        AckEdu(edu);
        intx.EndOfInterrupt();
        intx.TryWait(s_quiet, out _).ShouldBeFalse();

        intx.Disable();
        edu.InterruptMode.ShouldBe(PciInterruptMode.None);
        intx.IsEnabled.ShouldBeFalse();
        Should.Throw<InvalidOperationException>(intx.EndOfInterrupt).Message.ShouldContain("0000:00:02.0 INTx is not enabled");
    }

    [Fact]
    public async Task Intx_with_a_callers_resample_eventfd_and_mask()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        using var resample = new InterruptEvent();
        edu.Intx.Enable(resample);
        edu.Intx.Mask();
        RaiseEdu(edu);
        edu.Intx.TryWait(s_quiet, out _).ShouldBeFalse("masked");
        edu.Intx.Unmask();
        (await WaitAsync(edu.Intx.WaitAsync)).ShouldBe(1UL, "unmasked with the line asserted");
        AckEdu(edu);
        resample.Signal(); // what KVM does at the guest's EOI: the kernel unmasks the line
        RaiseEdu(edu);
        (await WaitAsync(edu.Intx.WaitAsync)).ShouldBe(1UL, "the resample eventfd unmasked the line");
        AckEdu(edu);
        edu.Intx.Disable();
        resample.TryWait(out _).ShouldBeFalse("the caller's eventfd stays the caller's and open");
    }

    [Fact]
    public void Intx_without_a_pin_is_a_typed_answer()
    {
        using var testbed = new SimulatedTestbed(topology: InterruptTestDevice.Machine(new InterruptTestDevice(1, interruptPin: 0)));
        VfioPciDevice device = testbed.Open(InterruptTestDevice.Address);
        device.Intx.IsAvailable.ShouldBeFalse();
        device.Intx.PinName.ShouldBe("none");
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => device.Intx.Enable());
        e.Failure.ShouldBe(PciInterruptFailure.NotSupported);
        e.Message.ShouldContain(InterruptTestDevice.Address);
        e.Message.ShouldContain("no INTx pin");
    }

    [Fact]
    public async Task Msi_on_edu_one_vector_fires()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        edu.Msi.MaxVectors.ShouldBe(1);
        edu.Msi.Capability!.Value.Is64Bit.ShouldBeTrue();
        edu.Msi.Enable().ShouldBe(1);
        edu.InterruptMode.ShouldBe(PciInterruptMode.Msi);
        edu.SetBusMaster(true);
        RaiseEdu(edu);
        (await WaitAsync(ct => edu.Msi.WaitAsync(0, ct))).ShouldBe(1UL);
        AckEdu(edu);
        Should.Throw<ArgumentOutOfRangeException>(() => edu.Msi.GetVector(1)).Message.ShouldContain("1 vector(s) enabled");
        edu.Msi.Disable();
        edu.Msi.IsEnabled.ShouldBeFalse();
        edu.InterruptMode.ShouldBe(PciInterruptMode.None);
    }

    [Fact]
    public void Msi_more_vectors_than_the_capability_is_typed_and_enables_nothing()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => edu.Msi.Enable(2));
        e.Failure.ShouldBe(PciInterruptFailure.TooManyVectors);
        e.Limit.ShouldBe(1);
        e.Message.ShouldContain("0000:00:02.0 MSI");
        e.Message.ShouldContain("offers 1");
        edu.InterruptMode.ShouldBe(PciInterruptMode.None);
        edu.Msi.Enable(1).ShouldBe(1);
    }

    [Fact]
    public void Msi_host_with_fewer_vectors_retries_with_the_kernels_count()
    {
        using var testbed = new SimulatedTestbed(topology: InterruptTestDevice.Machine(new InterruptTestDevice(8, hostVectorLimit: 2)));
        VfioPciDevice device = testbed.Open(InterruptTestDevice.Address);
        device.Msi.MaxVectors.ShouldBe(8);
        device.Msi.Enable(8).ShouldBe(2);
        device.Msi.VectorCount.ShouldBe(2);
        device.SetBusMaster(true);
        device.Device.WriteRegion32(0, 0, 1);
        device.Msi.TryWait(1, s_timeout, out _).ShouldBeTrue();
        device.Msi.Disable();

        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => device.Msi.Enable(8, acceptFewer: false));
        e.Failure.ShouldBe(PciInterruptFailure.VectorsUnavailable);
        e.Limit.ShouldBe(2);
        device.InterruptMode.ShouldBe(PciInterruptMode.None);
        device.Msi.VectorCount.ShouldBe(0);
    }

    [Fact]
    public void Msi_without_interrupt_remapping_gets_one_vector()
    {
        using var testbed = new SimulatedTestbed(topology: InterruptTestDevice.Machine(new InterruptTestDevice(4), interruptRemapping: false));
        VfioPciDevice device = testbed.Open(InterruptTestDevice.Address);
        device.Msi.Enable(4).ShouldBe(1);
    }

    [Fact]
    public void Modes_are_exclusive_and_say_which_is_enabled()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        edu.Intx.Enable();
        Should.Throw<InvalidOperationException>(() => edu.Msi.Enable()).Message.ShouldContain("Intx is enabled");
        Should.Throw<InvalidOperationException>(() => edu.Intx.Enable()).Message.ShouldContain("enabled already");
        edu.Intx.Disable();
        edu.Msi.Enable();
        edu.Msi.Disable();
    }

    [Fact]
    public void Msix_enabled_with_no_vector_grows_shrinks_and_masks()
    {
        using var testbed = new SimulatedTestbed(topology: SimulatedTestbed.MsixMachine());
        VfioPciDevice device = testbed.Open(SimulatedMachines.Nvme);
        PciMsix msix = device.Msix;
        msix.Layout!.Value.VectorCount.ShouldBe(65);
        msix.Enable().ShouldBe(0);
        msix.IsEnabled.ShouldBeTrue();
        device.InterruptMode.ShouldBe(PciInterruptMode.Msix);
        device.SetBusMaster(true);

        msix.SetVectorCount(4);
        msix.VectorCount.ShouldBe(4);
        for (int v = 0; v < 4; v++)
        {
            SendMsix(device, v);
            msix.TryWait(v, s_timeout, out ulong count).ShouldBeTrue($"vector {v}");
            count.ShouldBe(1UL);
        }

        msix.Mask(2);
        msix.KernelMasksVectors.ShouldBe(false, "vfio-pci answers ENOTTY to ACTION_MASK on MSI-X");
        msix.IsMasked(2).ShouldBeTrue();
        SendMsix(device, 2);
        msix.TryWait(2, s_quiet, out _).ShouldBeFalse("masked");
        msix.Unmask(2);
        msix.TryWait(2, s_timeout, out _).ShouldBeTrue("the message held in the pending bit arrives on unmask");

        msix.SetVectorCount(1);
        Should.Throw<ArgumentOutOfRangeException>(() => msix.GetVector(3));
        SendMsix(device, 0);
        msix.TryWait(0, s_timeout, out _).ShouldBeTrue();
        msix.SetVectorCount(0);
        msix.IsEnabled.ShouldBeTrue("MSI-X stays enabled with no vector");
        msix.Disable();
        device.InterruptMode.ShouldBe(PciInterruptMode.None);
    }

    [Fact]
    public void Msix_too_many_vectors_and_absent_msix_are_typed()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice device = testbed.Open(SimulatedMachines.Nvme);
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => device.Msix.Enable(66));
        e.Failure.ShouldBe(PciInterruptFailure.TooManyVectors);
        e.Limit.ShouldBe(65);
        e.Message.ShouldContain("0000:00:03.0 MSI-X");
        device.Msix.Enable(2);
        Should.Throw<VfioPciInterruptException>(() => device.Msix.SetVectorCount(66)).Limit.ShouldBe(65);
        device.Msix.VectorCount.ShouldBe(2);

        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        edu.Msix.IsAvailable.ShouldBeFalse();
        Should.Throw<VfioPciInterruptException>(() => edu.Msix.Enable()).Failure.ShouldBe(PciInterruptFailure.NotSupported);
    }

    [Fact]
    public void Msix_growing_past_the_hosts_vectors_fails_and_keeps_the_previous_ones()
    {
        var topology = SimulatedMachines.Testbed().AddPci(InterruptTestDevice.Address, iommuGroup: 6, new MsixTestDevice(vectors: 8, hostVectorLimit: 4));
        using var testbed = new SimulatedTestbed(topology: topology);
        VfioPciDevice device = testbed.Open(InterruptTestDevice.Address);
        device.Msix.Enable(8).ShouldBe(4, "the kernel's answer: 4 of 8, retried with 4");
        Should.Throw<VfioException>(() => device.Msix.SetVectorCount(6)).Errno.ShouldBe(Errno.ENOSPC);
        device.Msix.VectorCount.ShouldBe(4);
        device.SetBusMaster(true);
        SendMsix(device, 3);
        device.Msix.TryWait(3, s_timeout, out _).ShouldBeTrue();
    }

    [Fact]
    public void Msix_without_dynamic_allocation_grows_by_enabling_again_and_keeps_the_eventfds()
    {
        var device = new InterruptTestDevice(0, hostVectorLimit: 6, msixVectors: 16, dynamicMsix: false);
        using var testbed = new SimulatedTestbed(topology: InterruptTestDevice.Machine(device));
        VfioPciDevice pci = testbed.Open(InterruptTestDevice.Address);
        pci.Device.GetIrq(VfioPciIrq.Msix).IsNoResize.ShouldBeTrue();
        pci.Msix.Enable(2).ShouldBe(2);
        InterruptEvent first = pci.Msix.GetVector(0);
        pci.Msix.Mask(1);
        pci.Msix.SetVectorCount(5);
        pci.Msix.GetVector(0).ShouldBeSameAs(first, "the eventfds of the vectors kept stay");
        pci.Msix.IsMasked(1).ShouldBeTrue("a masked vector stays masked across the re-enable");
        pci.SetBusMaster(true);
        pci.Device.WriteRegion32(0, 0x8, 4);
        pci.Msix.TryWait(4, s_timeout, out _).ShouldBeTrue();
        pci.Device.WriteRegion32(0, 0x8, 1);
        pci.Msix.TryWait(1, s_quiet, out _).ShouldBeFalse("masked");

        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => pci.Msix.SetVectorCount(8));
        e.Failure.ShouldBe(PciInterruptFailure.VectorsUnavailable);
        e.Limit.ShouldBe(6);
        pci.Msix.VectorCount.ShouldBe(5, "the previous vectors are back");
        pci.Device.WriteRegion32(0, 0x8, 4);
        pci.Msix.TryWait(4, s_timeout, out _).ShouldBeTrue("and wired");
    }

    [Fact]
    public void Err_and_req_notifications()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice edu = testbed.Open(SimulatedMachines.Edu);
        edu.ErrorNotification.IsAvailable.ShouldBeFalse("edu is conventional PCI");
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(edu.ErrorNotification.Enable);
        e.Failure.ShouldBe(PciInterruptFailure.NotSupported);
        e.Message.ShouldContain("0000:00:02.0 ERR");

        edu.RequestNotification.IsAvailable.ShouldBeTrue();
        edu.RequestNotification.Enable();
        testbed.Kernel.RequestDeviceRemoval(SimulatedMachines.Edu).ShouldBeTrue();
        edu.RequestNotification.TryWait(s_timeout, out _).ShouldBeTrue();
        edu.RequestNotification.Disable();
        edu.RequestNotification.IsEnabled.ShouldBeFalse();

        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);
        nvme.ErrorNotification.IsAvailable.ShouldBeTrue();
        nvme.ErrorNotification.Enable();
        Should.Throw<InvalidOperationException>(nvme.ErrorNotification.Enable);
        nvme.Device.TriggerIrq(VfioPciIrq.Error);
        nvme.ErrorNotification.TryWait(s_timeout, out _).ShouldBeTrue();
    }

    [Fact]
    public void Reset_hooks_unwire_and_rewire_the_same_eventfds()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);
        nvme.Msix.Enable(3);
        nvme.Msix.Mask(1);
        InterruptEvent first = nvme.Msix.GetVector(0);
        nvme.DisarmInterruptsForReset();
        Should.Throw<VfioException>(() => nvme.Device.TriggerIrq(VfioPciIrq.Msix)).Errno.ShouldBe(Errno.EINVAL, "MSI-X is off in the kernel");
        nvme.InterruptMode.ShouldBe(PciInterruptMode.Msix, "the mode stays recorded");
        nvme.RearmInterruptsAfterReset();
        nvme.Msix.GetVector(0).ShouldBeSameAs(first);
        nvme.Device.TriggerIrq(VfioPciIrq.Msix, 0, 3);
        nvme.Msix.TryWait(0, s_timeout, out _).ShouldBeTrue();
        nvme.Msix.GetVector(1).TryWait(out _).ShouldBeFalse("masked vectors stay unwired");
        nvme.Msix.TryWait(2, s_timeout, out _).ShouldBeTrue();
    }

    [Fact]
    public void Dispose_disables_what_was_enabled_and_the_device_stays_usable()
    {
        using var testbed = new SimulatedTestbed();
        AttachedDevice attached = testbed.Attach(SimulatedMachines.Nvme);
        using (var pci = new VfioPciDevice(attached))
        {
            pci.Msix.Enable(3);
            pci.ErrorNotification.Enable();
        }
        using var again = new VfioPciDevice(attached);
        again.Msix.Enable(3).ShouldBe(3, "nothing was left enabled in the kernel");
    }

    [Fact]
    public async Task Waits_are_cancellable()
    {
        using var testbed = new SimulatedTestbed();
        VfioPciDevice nvme = testbed.Open(SimulatedMachines.Nvme);
        nvme.Msix.Enable(1);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(20));
        await Should.ThrowAsync<OperationCanceledException>(async () => await nvme.Msix.WaitAsync(0, cts.Token));
        nvme.Device.TriggerIrq(VfioPciIrq.Msix, 0, 1);
        (await WaitAsync(ct => nvme.Msix.WaitAsync(0, ct))).ShouldBe(1UL, "the cancelled wait left the signal for the next one");
    }

    internal static void RaiseEdu(VfioPciDevice edu) => edu.Device.WriteRegion32(0, 0x60, 1);

    internal static void AckEdu(VfioPciDevice edu) => edu.Device.WriteRegion32(0, 0x64, 1);

    /// <summary>Makes the MSI-X test device send a vector (on <see cref="SimulatedTestbed.MsixMachine"/>).</summary>
    internal static void SendMsix(VfioPciDevice device, int vector) => device.Device.WriteRegion32(0, 0x08, (uint)vector);

    private static async Task<ulong> WaitAsync(Func<CancellationToken, ValueTask<ulong>> wait)
    {
        using var cts = new CancellationTokenSource(s_timeout);
        return await wait(cts.Token);
    }
}
