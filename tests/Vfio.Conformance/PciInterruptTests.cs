// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Devices.Pci;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>
/// Devices.Pci's interrupts on both kernels: INTx and MSI on edu (00:02.0: pin A, one MSI vector, conventional PCI),
/// MSI-X and ERR on the device at 00:03.0 (QEMU's nvme on the kernel, 65 vectors, PCI Express), the kernel's own
/// answers to the same requests made raw, and the config virtualizer driving edu's MSI. Vectors of MSI-X are proven
/// wired with the kernel's loopback trigger (<c>DATA_NONE | ACTION_TRIGGER</c>), which signals exactly the vectors
/// that have an eventfd.
/// </summary>
public sealed class PciInterruptTests
{
    private static readonly TimeSpan s_quiet = TimeSpan.FromMilliseconds(100);

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public async Task Intx_EduRaisesItWithMsiOff_EndOfInterruptUnmasks(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Edu));
        using var edu = new EduDriver(pci.Attached, useMmap: true);
        pci.Intx.Pin.ShouldBe((byte)1);
        pci.Intx.Enable();
        pci.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        for (int i = 0; i < 20; i++)
        {
            edu.RaiseInterrupt(1);
            (await WaitAsync(pci.Intx.WaitAsync, $"INTx {i}")).ShouldBe(1UL);
            edu.AcknowledgeInterrupt(1);
            pci.Intx.EndOfInterrupt();
        }
        // Still asserted at the device: the end of interrupt signals it again.
        edu.RaiseInterrupt(1);
        (await WaitAsync(pci.Intx.WaitAsync, "INTx raised")).ShouldBe(1UL);
        pci.Intx.EndOfInterrupt();
        (await WaitAsync(pci.Intx.WaitAsync, "INTx still asserted")).ShouldBe(1UL);
        edu.AcknowledgeInterrupt(1);
        pci.Intx.EndOfInterrupt();
        pci.Intx.TryWait(s_quiet, out _).ShouldBeFalse("acknowledged: quiet");
        pci.Intx.Disable();
        pci.InterruptMode.ShouldBe(PciInterruptMode.None);
    }

    /// <summary>
    /// x86 without interrupt remapping gives a device one MSI vector (msi_capability_init: only the remapping domains
    /// allow multiple-message MSI), so vfio-pci answers a request for more with the count it could allocate and enables
    /// nothing; Devices.Pci retries with that count, as QEMU does, or says so typed. Real kernel: qemu-xhci,msi=on,msix=off
    /// (16 MSI vectors) in the pci-intremap-off shape, attached with allow_unsafe_interrupts set.
    /// </summary>
    [Theory]
    [Trait("Modes", "intremap-off")]
    [MemberData(nameof(Target.IntremapOffModes), MemberType = typeof(Target))]
    public async Task Msi_MoreVectorsThanTheHostGives_TheKernelAnswersOne_AndTheRetryTakesIt(Mode mode)
    {
        using Rig rig = Rig.Create(mode, new SimulatedMachine(InterruptRemapping: false));
        using IDisposable unsafeInterrupts = rig.AllowUnsafeInterrupts();
        using var pci = new VfioPciDevice(rig.Attach(Target.MultiMessageMsi));
        pci.Msi.MaxVectors.ShouldBe(16);
        pci.Device.GetIrq(VfioPciIrq.Msi).Count.ShouldBe(16);

        // The kernel's own answer: how many it could allocate, and nothing enabled.
        using (var a = new InterruptEvent())
        using (var b = new InterruptEvent())
        using (var c = new InterruptEvent())
        using (var d = new InterruptEvent())
        {
            pci.Device.TrySetIrqEventFds(VfioPciIrq.Msi, 0, [a, b, c, d], out int available).ShouldBeFalse();
            available.ShouldBe(1);
            Should.Throw<VfioException>(() => pci.Device.TriggerIrq(VfioPciIrq.Msi)).Errno.ShouldBe(Errno.EINVAL, "MSI stayed off");
        }

        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => pci.Msi.Enable(4, acceptFewer: false));
        e.Failure.ShouldBe(PciInterruptFailure.VectorsUnavailable);
        e.Limit.ShouldBe(1);
        e.Message.ShouldContain(pci.Name);
        (pci.Msi.IsEnabled, pci.InterruptMode).ShouldBe((false, PciInterruptMode.None));

        pci.Msi.Enable(4).ShouldBe(1);
        pci.Msi.VectorCount.ShouldBe(1);
        pci.InterruptMode.ShouldBe(PciInterruptMode.Msi);
        pci.Device.TriggerIrq(VfioPciIrq.Msi);   // the kernel signals the vector's eventfd (loopback)
        (await WaitAsync(ct => pci.Msi.WaitAsync(0, ct), "MSI vector 0")).ShouldBe(1UL);
        pci.Msi.Disable();
        Should.Throw<VfioException>(() => pci.Device.TriggerIrq(VfioPciIrq.Msi)).Errno.ShouldBe(Errno.EINVAL, "MSI is off in the kernel");
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public async Task Msi_EduOneVectorFires_MoreIsTypedAndTheKernelSaysEinval(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Edu));
        pci.Msi.MaxVectors.ShouldBe(1);
        pci.Device.GetIrq(VfioPciIrq.Msi).Count.ShouldBe(1, "the kernel counts the capability's vectors too");

        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => pci.Msi.Enable(2));
        e.Failure.ShouldBe(PciInterruptFailure.TooManyVectors);
        e.Limit.ShouldBe(1);
        e.Message.ShouldContain(pci.Name);
        using (var a = new InterruptEvent())
        using (var b = new InterruptEvent())
        {
            Should.Throw<VfioException>(() => pci.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [a, b])).Errno.ShouldBe(Errno.EINVAL);
        }
        pci.InterruptMode.ShouldBe(PciInterruptMode.None);

        pci.Msi.Enable(1).ShouldBe(1);
        pci.SetBusMaster(true);
        using var edu = new EduDriver(pci.Attached, useMmap: true);
        for (int i = 0; i < 10; i++)
        {
            edu.RaiseInterrupt(1);
            (await WaitAsync(ct => pci.Msi.WaitAsync(0, ct), $"MSI {i}")).ShouldBe(1UL);
            edu.AcknowledgeInterrupt(1);
        }
        pci.Msi.Disable();
        edu.RaiseInterrupt(1);
        Should.Throw<VfioException>(() => pci.Device.TriggerIrq(VfioPciIrq.Msi)).Errno.ShouldBe(Errno.EINVAL, "MSI is off in the kernel");
        edu.AcknowledgeInterrupt(1);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Msix_EnabledWithNoVector_GrowsShrinksAndMasks(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Nvme));
        PciMsixLayout layout = pci.Msix.Layout.ShouldNotBeNull();
        layout.VectorCount.ShouldBe(65);
        VfioIrqInfo info = pci.Device.GetIrq(VfioPciIrq.Msix);
        info.Count.ShouldBe(layout.VectorCount);
        info.IsNoResize.ShouldBeFalse("x86 allocates MSI-X vectors on demand");

        pci.Msix.Enable().ShouldBe(0);
        pci.InterruptMode.ShouldBe(PciInterruptMode.Msix);
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, layout.VectorCount); // no vector has an eventfd: signals nothing

        pci.Msix.SetVectorCount(4);
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, 4);
        ExpectSignalled(pci.Msix, [true, true, true, true]);

        pci.Msix.Mask(1);
        pci.Msix.KernelMasksVectors.ShouldBe(false, "vfio-pci refuses ACTION_MASK on MSI-X (ENOTTY): masking detaches the eventfd");
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, 4);
        ExpectSignalled(pci.Msix, [true, false, true, true]);
        pci.Msix.Unmask(1);
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 1, 1);
        ExpectSignalled(pci.Msix, [false, true, false, false]);
        Should.Throw<VfioException>(() => pci.Device.MaskIrq(VfioPciIrq.Msix, 0)).Errno.ShouldBe(Errno.ENOTTY);

        pci.Msix.SetVectorCount(2);
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, 4);
        ExpectSignalled(pci.Msix, [true, true]);
        pci.Msix.SetVectorCount(0);
        pci.Msix.IsEnabled.ShouldBeTrue();
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, 4);

        pci.Msix.Disable();
        pci.InterruptMode.ShouldBe(PciInterruptMode.None);
        Should.Throw<VfioException>(() => pci.Device.TriggerIrq(VfioPciIrq.Msix)).Errno.ShouldBe(Errno.EINVAL, "MSI-X is off in the kernel");
    }

    /// <summary>The nvme does DMA (its admin queues) through the IOMMU, so this case needs one (no-IOMMU DMA takes
    /// physical memory, which the admin queue setup here does not use).</summary>
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public async Task Msix_DeviceMessageArrivesOnItsVector_AndAMaskedOneWaitsForUnmask(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        DmaSpace space = rig.NewSpace();
        using var pci = new VfioPciDevice(rig.Attach(Target.Nvme, space));
        pci.Msix.Enable(1).ShouldBe(1);
        using var device = new MsixMessageSource(pci, space);
        device.IsNvme.ShouldBeTrue("QEMU's nvme on the kernel, the simulator's NvmeDevice");
        for (int i = 0; i < 3; i++)
        {
            device.SendVector0();
            (await WaitAsync(ct => pci.Msix.WaitAsync(0, ct), $"message {i}")).ShouldBe(1UL);
            device.Complete();
        }

        pci.Msix.Mask(0);
        device.SendVector0();
        pci.Msix.TryWait(0, s_quiet, out _).ShouldBeFalse("vector 0 is masked");
        pci.Msix.Unmask(0);
        (await WaitAsync(ct => pci.Msix.WaitAsync(0, ct), "the message held while masked")).ShouldBe(1UL);
        device.Complete();
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Msix_TooManyVectors_IsTypedAndTheKernelSaysEinval(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Nvme));
        int table = pci.Msix.MaxVectors;
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(() => pci.Msix.Enable(table + 1));
        e.Failure.ShouldBe(PciInterruptFailure.TooManyVectors);
        e.Limit.ShouldBe(table);
        e.Message.ShouldContain(pci.Name);
        using (var beyond = new InterruptEvent())
        {
            Should.Throw<VfioException>(() => pci.Device.SetIrqEventFds(VfioPciIrq.Msix, table, [beyond])).Errno.ShouldBe(Errno.EINVAL);
        }
        pci.Msix.Enable(1).ShouldBe(1);
        Should.Throw<VfioPciInterruptException>(() => pci.Msix.SetVectorCount(table + 1)).Failure.ShouldBe(PciInterruptFailure.TooManyVectors);
        pci.Msix.VectorCount.ShouldBe(1);
        pci.Device.TriggerIrq(VfioPciIrq.Msix, 0, 1);
        ExpectSignalled(pci.Msix, [true]);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void ErrAndReq_RegisteredWhereOffered_AbsentErrIsTyped(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var edu = new VfioPciDevice(rig.Attach(Target.Edu));
        edu.ErrorNotification.IsAvailable.ShouldBeFalse("edu is conventional PCI");
        Should.Throw<VfioException>(() => edu.Device.GetIrq(VfioPciIrq.Error)).Errno.ShouldBe(Errno.EINVAL);
        VfioPciInterruptException e = Should.Throw<VfioPciInterruptException>(edu.ErrorNotification.Enable);
        e.Failure.ShouldBe(PciInterruptFailure.NotSupported);
        e.Message.ShouldContain($"{edu.Name} ERR");

        edu.RequestNotification.IsAvailable.ShouldBeTrue();
        edu.RequestNotification.Enable();
        edu.Device.TriggerIrq(VfioPciIrq.Request);
        edu.RequestNotification.TryWait(Rig.Timeout, out ulong requests).ShouldBeTrue();
        requests.ShouldBe(1UL);
        edu.RequestNotification.Disable();
        Should.Throw<VfioException>(() => edu.Device.TriggerIrq(VfioPciIrq.Request)).Errno.ShouldBe(Errno.EINVAL, "no eventfd left");

        using var nvme = new VfioPciDevice(rig.Attach(Target.Nvme));
        nvme.ErrorNotification.IsAvailable.ShouldBeTrue("PCI Express");
        nvme.Device.GetIrq(VfioPciIrq.Error).Count.ShouldBe(1);
        nvme.ErrorNotification.Enable();
        nvme.Device.TriggerIrq(VfioPciIrq.Error);
        nvme.ErrorNotification.TryWait(Rig.Timeout, out _).ShouldBeTrue();
        nvme.ErrorNotification.Disable();
        nvme.ErrorNotification.IsEnabled.ShouldBeFalse();
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Modes_OneAtATime_AsTheKernelRequires(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Edu));
        pci.Intx.Enable();
        Should.Throw<InvalidOperationException>(() => pci.Msi.Enable()).Message.ShouldContain("one of INTx, MSI and MSI-X at a time");
        using (var msi = new InterruptEvent())
        {
            Should.Throw<VfioException>(() => pci.Device.SetIrqEventFds(VfioPciIrq.Msi, 0, [msi])).Errno.ShouldBe(Errno.EINVAL);
        }
        pci.Intx.Disable();
        pci.Msi.Enable().ShouldBe(1);
        pci.Msi.Disable();
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public async Task Virtualizer_GuestEnablesMsi_EduMessageArrives_DisableReturnsToIntx(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var pci = new VfioPciDevice(rig.Attach(Target.Edu));
        var guest = new PciConfigVirtualizer(pci);
        pci.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        guest.Read(0x00, 4).ShouldBe(0x11e81234u);
        guest.Write(0x10, 4, 0xffffffff);
        guest.Read(0x10, 4).ShouldBe(0xfff00000u, "edu's BAR0 sizes as 1 MiB");

        PciMsiCapability msi = pci.Msi.Capability.ShouldNotBeNull();
        guest.Write(msi.Offset + 4, 4, 0xfee00000);
        guest.Write(msi.DataOffset, 2, 0x0041);
        guest.Write(msi.Offset + 2, 2, guest.Read(msi.Offset + 2, 2) | PciMsiCapability.EnableBit);
        pci.InterruptMode.ShouldBe(PciInterruptMode.Msi);
        guest.Write(0x04, 2, guest.Read(0x04, 2) | 0x6); // memory space and bus master, as the guest's driver does
        using var edu = new EduDriver(pci.Attached, useMmap: true);
        edu.RaiseInterrupt(1);
        (await WaitAsync(ct => pci.Msi.WaitAsync(0, ct), "MSI")).ShouldBe(1UL);
        edu.AcknowledgeInterrupt(1);

        guest.Write(msi.Offset + 2, 2, guest.Read(msi.Offset + 2, 2) & ~(uint)PciMsiCapability.EnableBit);
        pci.InterruptMode.ShouldBe(PciInterruptMode.Intx);
        edu.RaiseInterrupt(1);
        (await WaitAsync(pci.Intx.WaitAsync, "INTx after MSI")).ShouldBe(1UL);
        edu.AcknowledgeInterrupt(1);
        pci.Intx.EndOfInterrupt();
    }

    /// <summary>Each vector with true must have been signalled exactly once, each with false not at all.</summary>
    private static void ExpectSignalled(PciMsix msix, bool[] expected)
    {
        for (int v = 0; v < expected.Length; v++)
        {
            if (expected[v])
            {
                msix.TryWait(v, Rig.Timeout, out ulong count).ShouldBeTrue($"vector {v} signalled");
                count.ShouldBe(1UL, $"vector {v} once");
            }
            else
            {
                msix.GetVector(v).TryWait(out _).ShouldBeFalse($"vector {v} not signalled");
            }
        }
    }

    private static async Task<ulong> WaitAsync(Func<CancellationToken, ValueTask<ulong>> wait, string what)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Rig.Timeout);
        try
        {
            return await wait(timeout.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new ShouldAssertException($"{what} did not arrive within {Rig.Timeout.TotalSeconds} s");
        }
    }
}
