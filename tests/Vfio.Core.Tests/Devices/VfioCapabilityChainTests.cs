// SPDX-License-Identifier: MIT
using Shouldly;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests.Devices;

public sealed class VfioCapabilityChainTests
{
    private const int Fixed = 32;
    private const string Op = "VFIO_DEVICE_GET_REGION_INFO";
    private const string Obj = "dev region 0";

    private static byte[] Info(byte[] caps)
    {
        var info = new byte[Fixed + caps.Length];
        caps.CopyTo(info, Fixed);
        return info;
    }

    private static IReadOnlyList<VfioCapability> Parse(byte[] info, uint first = Fixed)
        => VfioCapabilityChain.Parse(info, Fixed, first, Op, Obj);

    private static VfioException Malformed(byte[] info, uint first = Fixed)
        => Should.Throw<VfioException>(() => Parse(info, first));

    [Fact]
    public void Parse_NoChain_ReturnsEmpty()
        => Parse(new byte[Fixed], 0).ShouldBeEmpty();

    [Fact]
    public void Parse_ThreeCapabilities_InChainOrderWithTheirBytes()
    {
        byte[] caps = new CapBuilder(Fixed).Sparse((0, 0x1000), (0x3000, 0x1000)).Type(0x80008086, 3).MsixMappable().Build();
        IReadOnlyList<VfioCapability> list = Parse(Info(caps));
        list.Select(c => c.Id).ShouldBe([VfioUapi.VFIO_REGION_INFO_CAP_SPARSE_MMAP, VfioUapi.VFIO_REGION_INFO_CAP_TYPE, VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE]);
        list.Select(c => c.Version).ShouldAllBe(v => v == 1);
        list[0].Offset.ShouldBe(Fixed);
        list[0].Bytes.Length.ShouldBe(8 + 8 + 32);
        list[1].Offset.ShouldBe(Fixed + 48);
        list[1].Bytes.Length.ShouldBe(16);
        list[2].Offset.ShouldBe(Fixed + 64);
        list[2].Bytes.Length.ShouldBe(8);
        VfioCapabilityChain.Find(list, VfioUapi.VFIO_REGION_INFO_CAP_TYPE).ShouldBeSameAs(list[1]);
        VfioCapabilityChain.Find(list, 99).ShouldBeNull();
    }

    [Fact]
    public void Parse_LastCapability_ExtendsToTheEndOfTheBuffer()
    {
        byte[] caps = new CapBuilder(Fixed).Add(7, 2, new byte[20]).Build();
        VfioCapability only = Parse(Info(caps)).ShouldHaveSingleItem();
        only.Id.ShouldBe((ushort)7);
        only.Version.ShouldBe((ushort)2);
        only.Bytes.Length.ShouldBe(32);   // 8 + 20, padded to 8
    }

    [Fact]
    public void Parse_NextPointsToItself_IsRejectedAsALoop()
    {
        byte[] caps = new CapBuilder(Fixed).MsixMappable().SetNext(0, Fixed).Build();
        VfioException e = Malformed(Info(caps));
        e.Message.ShouldContain("malformed capability chain");
        e.Message.ShouldContain("backwards");
        e.Message.ShouldContain("0x20");
        e.Operation.ShouldBe(Op);
        e.ObjectName.ShouldBe(Obj);
        e.Errno.ShouldBe(Errno.None);
    }

    [Fact]
    public void Parse_TwoCapabilitiesPointingAtEachOther_IsRejected()
    {
        // A -> B -> A: the second hop goes backwards.
        byte[] caps = new CapBuilder(Fixed).MsixMappable().MsixMappable().SetNext(8, Fixed).Build();
        Malformed(Info(caps)).Message.ShouldContain("next pointer 0x20, which goes backwards");
    }

    [Fact]
    public void Parse_NextIntoTheCurrentHeader_IsRejected()
    {
        byte[] caps = new CapBuilder(Fixed).Add(1, 1, new byte[8]).SetNext(0, Fixed + 4).Build();
        Malformed(Info(caps)).Message.ShouldContain("backwards");
    }

    [Fact]
    public void Parse_NextBeyondTheBuffer_IsRejected()
    {
        byte[] caps = new CapBuilder(Fixed).MsixMappable().SetNext(0, 0x1000).Build();
        Malformed(Info(caps)).Message.ShouldContain("beyond the 0x28-byte buffer");
    }

    [Fact]
    public void Parse_HeaderTruncatedByTheBufferEnd_IsRejected()
    {
        byte[] caps = new CapBuilder(Fixed).MsixMappable().SetNext(0, Fixed + 8).Build();
        byte[] info = Info(caps);
        Array.Resize(ref info, info.Length + 4);   // the next header would need 8 bytes, 4 are there
        Malformed(info).Message.ShouldContain("header at 0x28 extends beyond the 0x2C-byte buffer");
    }

    [Fact]
    public void Parse_FirstOffsetInsideTheFixedStructure_IsRejected()
    {
        byte[] caps = new CapBuilder(Fixed).MsixMappable().Build();
        Malformed(Info(caps), first: 16).Message.ShouldContain("inside the 32-byte fixed structure");
    }

    [Fact]
    public void Parse_FirstOffsetBeyondTheBuffer_IsRejected()
        => Malformed(new byte[Fixed], first: 0xFFFF_FFF8).Message.ShouldContain("extends beyond");

    [Fact]
    public void Parse_MaxCapabilities_AreAccepted()
    {
        var builder = new CapBuilder(Fixed);
        for (int i = 0; i < VfioCapabilityChain.MaxCapabilities; i++)
        {
            builder.MsixMappable();
        }
        Parse(Info(builder.Build())).Count.ShouldBe(VfioCapabilityChain.MaxCapabilities);
    }

    [Fact]
    public void Parse_MoreThanMaxCapabilities_IsRejected()
    {
        var builder = new CapBuilder(Fixed);
        for (int i = 0; i <= VfioCapabilityChain.MaxCapabilities; i++)
        {
            builder.MsixMappable();
        }
        Malformed(Info(builder.Build())).Message.ShouldContain($"more than {VfioCapabilityChain.MaxCapabilities} capabilities");
    }

    [Fact]
    public void Parse_UnalignedButForwardChain_IsAccepted()
    {
        // The kernel pads to 8, but nothing requires it: a forward chain with odd offsets parses.
        byte[] info = new byte[Fixed + 8 + 3 + 8];
        info[Fixed] = 1;
        BitConverter.TryWriteBytes(info.AsSpan(Fixed + 4), (uint)(Fixed + 11));
        info[Fixed + 11] = 2;
        IReadOnlyList<VfioCapability> list = Parse(info);
        list.Select(c => (int)c.Id).ShouldBe([1, 2]);
        list[0].Bytes.Length.ShouldBe(11);
    }
}
