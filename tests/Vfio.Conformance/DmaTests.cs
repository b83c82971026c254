// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;
using Vfio.Samples.Edu;

namespace Vfio.Conformance;

/// <summary>DMA through <see cref="DmaSpace"/>: RAM → edu → RAM, and no DMA once unmapped.</summary>
public sealed class DmaTests
{
    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void RoundTrip_ThroughAnAllocatedIovaBelowEdusMask(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        DmaSpace space = attached.Space;
        using var buffer = new DmaBuffer(4);

        DmaMapping mapping = space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        mapping.Size.ShouldBe(buffer.Size);
        mapping.HostAddress.ShouldBe(buffer.Address);
        (mapping.Iova + mapping.Size - 1).ShouldBeLessThanOrEqualTo(EduDriver.DefaultDmaMask);
        (mapping.Iova % 4096).ShouldBe(0UL);
        space.MappingCount.ShouldBe(1);
        space.MappedBytes.ShouldBe(buffer.Size);
        space.TryFind(mapping.Iova + 4096, out DmaMapping found).ShouldBeTrue();
        found.ShouldBe(mapping);

        Edu.RoundTrip(attached.Device, buffer, mapping.Iova, page: 0, seed: 11);
        Edu.RoundTrip(attached.Device, buffer, mapping.Iova, page: 2, seed: 12);

        space.Unmap(mapping);
        space.MappingCount.ShouldBe(0);
    }

    [Theory]
    [Trait("Modes", "iommu")]
    [MemberData(nameof(Target.IommuModes), MemberType = typeof(Target))]
    public void AfterUnmap_DmaIsBlocked_AndTheBufferUntouched(Mode mode)
    {
        using Rig rig = Rig.Create(mode);
        AttachedDevice attached = rig.Attach(Target.Edu);
        DmaSpace space = attached.Space;
        using var buffer = new DmaBuffer(2);
        using var edu = new EduDriver(attached.Device, useMmap: true);
        edu.EnableBusMaster();

        DmaMapping mapping = space.Map(buffer.Address, buffer.Size, DmaAccess.ReadWrite, EduDriver.DefaultDmaMask);
        byte[] pattern = Patterns.Make(1024, 21);
        pattern.CopyTo(buffer.Page(0));
        edu.DmaToDevice(mapping.Iova, 0, 1024, Rig.Timeout);   // edu's buffer now holds the pattern
        buffer.Page(1).Fill(0x5A);

        space.Unmap(mapping);
        edu.DmaFromDevice(0, mapping.Iova + 4096, 1024, Rig.Timeout);   // device → RAM, through no mapping
        buffer.Page(1).ToArray().ShouldAllBe(b => b == 0x5A);

        if (rig.Simulator is { } simulator)
        {
            DmaFault fault = simulator.DmaFaults.ShouldHaveSingleItem();
            fault.Device.ShouldBe(Target.Edu);
            fault.Iova.ShouldBe(mapping.Iova + 4096);
            fault.Length.ShouldBe(1024UL);
            fault.Write.ShouldBeTrue();
        }

        // Mapped again (the same IOVA is free again), the same transfer lands.
        DmaMapping again = space.MapAt(mapping.Iova, buffer.Address, buffer.Size);
        edu.DmaFromDevice(0, again.Iova + 4096, 1024, Rig.Timeout);
        buffer.Page(1)[..1024].ToArray().ShouldBe(pattern);
    }
}
