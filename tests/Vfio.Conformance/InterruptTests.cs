// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>edu's MSI and INTx through <see cref="InterruptEvent"/>: raised at 0x60, acknowledged at 0x64.</summary>
public sealed class InterruptTests
{
    private const int Intx = 0;
    private const int Msi = 1;
    private const int MsiCount = 1000;
    private const int IntxCount = 200;
    private static readonly TimeSpan s_quiet = TimeSpan.FromMilliseconds(100);

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModesTwice), MemberType = typeof(Target))]
    public async Task Msi_AThousandInterrupts_NoneLostNoneExtra(Mode mode, bool async)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        using var edu = new EduDriver(attached, useMmap: true);
        edu.EnableBusMaster();   // an MSI is a memory write by the device
        using var msi = new InterruptEvent();
        attached.Device.SetIrqEventFds(Msi, 0, [msi]);

        ulong received = 0;
        for (int i = 0; i < MsiCount; i++)
        {
            edu.RaiseInterrupt(1);
            ulong count = await Wait(msi, async, $"MSI {i}");
            count.ShouldBe(1UL, $"MSI {i}");
            received += count;
            edu.ReadInterruptStatus().ShouldBe(1u);
            edu.AcknowledgeInterrupt(1);
        }
        received.ShouldBe((ulong)MsiCount);
        edu.ReadInterruptStatus().ShouldBe(0u);
        msi.TryWait(s_quiet, out _).ShouldBeFalse("no interrupt after the last one");

        attached.Device.DisableIrq(Msi);
        edu.RaiseInterrupt(1);
        msi.TryWait(s_quiet, out _).ShouldBeFalse("MSI disabled");
        edu.AcknowledgeInterrupt(1);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModesTwice), MemberType = typeof(Target))]
    public async Task Intx_EachInterruptAfterAckAndUnmask_NoneLostNoneExtra(Mode mode, bool async)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        using var edu = new EduDriver(attached, useMmap: true);
        using var intx = new InterruptEvent();
        attached.Device.SetIrqEventFds(Intx, 0, [intx]);

        ulong received = 0;
        for (int i = 0; i < IntxCount; i++)
        {
            edu.RaiseInterrupt(1);
            ulong count = await Wait(intx, async, $"INTx {i}");
            count.ShouldBe(1UL, $"INTx {i}");
            received += count;
            edu.AcknowledgeInterrupt(1);
            attached.Device.UnmaskIrq(Intx);
        }
        received.ShouldBe((ulong)IntxCount);
        intx.TryWait(s_quiet, out _).ShouldBeFalse("no interrupt after the last one");
        attached.Device.DisableIrq(Intx);
    }

    [Theory]
    [Trait("Modes", "pci")]
    [MemberData(nameof(Target.PciModes), MemberType = typeof(Target))]
    public void Intx_IsAutomaskedUntilUnmasked(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        VfioDevice device = attached.Device;
        device.GetIrq(Intx).Flags.ShouldBe(VfioIrqFlags.EventFd | VfioIrqFlags.Maskable | VfioIrqFlags.Automasked);
        using var edu = new EduDriver(attached, useMmap: true);
        using var intx = new InterruptEvent();
        device.SetIrqEventFds(Intx, 0, [intx]);

        edu.RaiseInterrupt(1);
        intx.TryWait(Rig.Timeout, out ulong first).ShouldBeTrue();
        first.ShouldBe(1UL);
        // Acknowledged at the device but not unmasked: the next raise stays masked...
        edu.AcknowledgeInterrupt(1);
        edu.RaiseInterrupt(1);
        intx.TryWait(s_quiet, out _).ShouldBeFalse("INTx is automasked until UNMASK");
        // ...and UNMASK with the line still asserted signals it at once.
        device.UnmaskIrq(Intx);
        intx.TryWait(Rig.Timeout, out ulong pending).ShouldBeTrue("UNMASK re-signals a pending INTx");
        pending.ShouldBe(1UL);
        edu.AcknowledgeInterrupt(1);
        device.UnmaskIrq(Intx);
        intx.TryWait(s_quiet, out _).ShouldBeFalse("acknowledged and unmasked: quiet");

        // A masked line (MASK) holds an interrupt until UNMASK too.
        device.MaskIrq(Intx);
        edu.RaiseInterrupt(1);
        intx.TryWait(s_quiet, out _).ShouldBeFalse("masked");
        device.UnmaskIrq(Intx);
        intx.TryWait(Rig.Timeout, out _).ShouldBeTrue("unmasked with the line asserted");
        edu.AcknowledgeInterrupt(1);
        device.UnmaskIrq(Intx);
        device.DisableIrq(Intx);
    }

    private static async Task<ulong> Wait(InterruptEvent interrupt, bool async, string what)
    {
        if (!async)
        {
            interrupt.TryWait(Rig.Timeout, out ulong count).ShouldBeTrue(what);
            return count;
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(Rig.Timeout);
        try
        {
            return await interrupt.WaitAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new ShouldAssertException($"{what} did not arrive within {Rig.Timeout.TotalSeconds} s");
        }
    }
}
