// SPDX-License-Identifier: MIT
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>The measuring helpers measure what they claim, so a layout test cannot pass by accident.</summary>
public sealed class ManagedLayoutTests
{
    [Fact]
    public void SizeOf_Primitives_AreTheirWidths()
    {
        ManagedLayout.SizeOf(typeof(byte)).ShouldBe(1);
        ManagedLayout.SizeOf(typeof(ushort)).ShouldBe(2);
        ManagedLayout.SizeOf(typeof(uint)).ShouldBe(4);
        ManagedLayout.SizeOf(typeof(ulong)).ShouldBe(8);
        ManagedLayout.SizeOf(typeof(Probe)).ShouldBe(Unsafe.SizeOf<Probe>());
    }

    [Fact]
    public void AlignOf_Primitives_AreTheirNaturalAlignment()
    {
        ManagedLayout.AlignOf(typeof(byte)).ShouldBe(1);
        ManagedLayout.AlignOf(typeof(ushort)).ShouldBe(2);
        ManagedLayout.AlignOf(typeof(uint)).ShouldBe(4);
        if (Environment.Is64BitProcess)
        {
            ManagedLayout.AlignOf(typeof(ulong)).ShouldBe(8);
            ManagedLayout.AlignOf(typeof(Probe)).ShouldBe(8);
        }
    }

    [Fact]
    public void OffsetOf_SequentialAndExplicitFields_AreTheRealOffsets()
    {
        var probe = default(Probe);
        ManagedLayout.OffsetOf(typeof(Probe).GetField(nameof(Probe.A))!).ShouldBe(0);
        ManagedLayout.OffsetOf(typeof(Probe).GetField(nameof(Probe.B))!).ShouldBe((int)Unsafe.ByteOffset(ref Unsafe.As<Probe, byte>(ref probe), ref Unsafe.As<ulong, byte>(ref probe.B)));
        ManagedLayout.OffsetOf(typeof(Overlay).GetField(nameof(Overlay.Low))!).ShouldBe(0);
        ManagedLayout.OffsetOf(typeof(Overlay).GetField(nameof(Overlay.Whole))!).ShouldBe(0);
        ManagedLayout.OffsetOf(typeof(Overlay).GetField(nameof(Overlay.High))!).ShouldBe(4);
    }

    /// <summary>
    /// <see cref="Marshal.OffsetOf(Type, string)"/> and <see cref="Marshal.SizeOf(Type)"/> still work for Vfio.Core's
    /// blittable structs although Vfio.Core has <c>[assembly: DisableRuntimeMarshalling]</c>, and agree with the
    /// measured layout; callers may use either.
    /// </summary>
    [Theory]
    [MemberData(nameof(UapiModel.StructNames), MemberType = typeof(UapiModel))]
    public void Struct_MarshalLayout_AgreesWithMeasuredLayout(string name)
    {
        var managed = UapiModel.Struct(name);
        var differences = new List<string>();
        KernelStructLayoutTests.Compare(differences, $"Marshal.SizeOf({name}) vs measured", Marshal.SizeOf(managed.Type), (ulong)managed.Size);
        foreach (var field in managed.Fields)
        {
            KernelStructLayoutTests.Compare(differences, $"Marshal.OffsetOf({name}.{field.Name}) vs measured", Marshal.OffsetOf(managed.Type, field.Name), (ulong)field.Offset);
        }

        differences.ShouldBeEmpty();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Probe
    {
        public byte A;
        public ulong B;
    }

    [StructLayout(LayoutKind.Explicit)]
    private struct Overlay
    {
        [FieldOffset(0)]
        public uint Low;

        [FieldOffset(0)]
        public ulong Whole;

        [FieldOffset(4)]
        public uint High;
    }
}
