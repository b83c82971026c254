// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Vfio.Core;
using Vfio.Devices.Platform;
using static Vfio.Conformance.VirtioMmioDriver;

namespace Vfio.Conformance;

/// <summary>The virtio-mmio entropy device through vfio-platform in no-IOMMU mode, driven as a user-space virtio driver.</summary>
public sealed class VirtioTests
{
    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public void Rng_CompleteEntropyRequest_ThroughASplitVirtqueueInPhysicalMemory(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        VfioDevice device = rig.Attach(Target.Rng).Device;
        using var virtio = new VirtioMmioDriver(device, rig.Kernel);
        VfioMmioRegion r = virtio.Registers;

        r.Read(MagicValue).ShouldBe(0x74726976u);
        r.Read(MmioVersion).ShouldBe(2u);
        r.Read(DeviceId).ShouldBe(4u);

        // Initialisation (virtio 1.2 §3.1.1).
        virtio.SetStatus(0);
        r.Read(Status).ShouldBe(0u);
        virtio.SetStatus(Acknowledge | Driver);
        ulong offered = virtio.ReadDeviceFeatures();
        TestContext.Current.TestOutputHelper?.WriteLine($"device features 0x{offered:x16}, vendor 0x{r.Read(VendorId):x8}, QueueNumMax {r.Read(QueueNumMax)}");
        (offered & VersionOne).ShouldNotBe(0UL);
        virtio.WriteDriverFeatures(VersionOne);
        virtio.SetStatus(Acknowledge | Driver | FeaturesOk);
        (r.Read(Status) & FeaturesOk).ShouldBe(FeaturesOk, "the device accepted the features");
        r.Write(QueueSel, 0);
        r.Read(QueueReady).ShouldBe(0u);
        r.Read(QueueNumMax).ShouldBe(1024u);   // QEMU's virtio-mmio reports VIRTQUEUE_MAX_SIZE, not the rng's 8
        virtio.SetUpQueue(4);
        r.Read(QueueReady).ShouldBe(1u);
        virtio.SetStatus(Acknowledge | Driver | FeaturesOk | DriverOk);

        virtio.Irq.Enable();
        virtio.Irq.IsLevelTriggered.ShouldBeTrue();
        virtio.Submit(64);
        virtio.Irq.TryWait(Rig.Timeout, out ulong count).ShouldBeTrue("the used-buffer interrupt");
        count.ShouldBe(1UL);
        uint status = r.Read(InterruptStatus);
        (status & UsedBufferInterrupt).ShouldBe(UsedBufferInterrupt);
        r.Write(InterruptAck, status);
        r.Read(InterruptStatus).ShouldBe(0u);

        virtio.UsedIndex.ShouldBe((ushort)1);
        virtio.UsedElement(0).ShouldBe((0u, 64u));
        virtio.Data(64).ShouldContain(b => b != 0, "the device wrote entropy");
        virtio.Irq.Unmask();

        virtio.SetStatus(0);   // reset: the device forgets the queue
        r.Read(Status).ShouldBe(0u);
        r.Read(QueueReady).ShouldBe(0u);
        virtio.Irq.Disable();
    }

    [Theory]
    [Trait("Modes", "platform")]
    [MemberData(nameof(Target.PlatformModes), MemberType = typeof(Target))]
    public async Task Rng_EntropyRequests_ThroughTheEoiEmulation_OneInterruptEach(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        using var virtio = new VirtioMmioDriver(rig.Attach(Target.Rng).Device, rig.Kernel);
        VfioMmioRegion r = virtio.Registers;
        virtio.Start(4);
        virtio.Irq.Enable();
        var host = new PlatformTests.RecordingHost();
        var clock = new FakeTimeProvider();
        virtio.Platform.StartEoiEmulation(host, TimeSpan.FromSeconds(1), clock);

        PlatformEoiStateMachine eoi = virtio.Platform.EoiStateMachine!;
        int injected = 0;
        for (int request = 1; request <= 2; request++)
        {
            virtio.Submit(32);
            while (await host.Next() != "inject 0")
            {
            }
            injected++;
            // The acknowledgement is the access that ends the interrupt: the device lowers its line with the write,
            // and the EOI after it unmasks the line, which therefore does not fire again. (Every access is an EOI, so
            // an interrupt that arrives before the notify's own EOI returns ends early and fires once more: another
            // access ends that one.)
            r.Write(InterruptAck, UsedBufferInterrupt);
            DateTime end = DateTime.UtcNow + Rig.Timeout;
            while (eoi.ActiveIrq >= 0 && DateTime.UtcNow < end)
            {
                r.Read(InterruptStatus);
            }
            eoi.ActiveIrq.ShouldBe(-1);
            virtio.UsedIndex.ShouldBe((ushort)request);
            virtio.UsedElement(request - 1).ShouldBe((0u, 32u));
        }
        injected.ShouldBe(2);
        eoi.PendingCount.ShouldBe(0);
        r.Read(InterruptStatus).ShouldBe(0u);
        clock.Advance(TimeSpan.FromSeconds(1));
        while (await host.Next() != "fast")
        {
        }
        eoi.IsFastPath.ShouldBeTrue();
        virtio.Platform.StopEoiEmulation();
        virtio.SetStatus(0);
    }
}
