// SPDX-License-Identifier: MIT
using System.Reflection;
using Shouldly;
using Vfio.Abi.Tests.Infrastructure;

namespace Vfio.Abi.Tests;

/// <summary>
/// Every <c>const</c> of <c>VfioUapi</c>, <c>IommuUapi</c> and <c>IoctlEncoding</c> against the value each
/// architecture's gcc computes for the macro or enumerator of the same name.
/// </summary>
/// <remarks>
/// An unsigned C# constant matches when the C value converted to the C# type is the C# value and no significant
/// bit is lost, so the kernel idioms <c>-1</c> (for a <c>__u32</c>) and <c>(1 &lt;&lt; 31)</c> match
/// <c>0xFFFFFFFF</c> and <c>0x80000000</c>. A signed C# constant must equal the C value exactly.
/// </remarks>
public sealed class KernelConstantTests
{
    [Theory]
    [MemberData(nameof(UapiModel.ConstantRows), MemberType = typeof(UapiModel))]
    public void Constant_MatchesKernelHeaders(string arch, string name)
    {
        var managed = UapiModel.Constant(name);
        var kernel = KernelProbe.For(arch);
        kernel.ThrowIfNotCompiled(KernelProbe.ConstantKey(name));

        if (managed.Value is string text)
        {
            kernel.Strings[name].ShouldBe(text, $"{managed.DeclaringType.Name}.{name}: C# \"{text}\", C ({arch}) \"{kernel.Strings[name]}\"");
            return;
        }

        var c = kernel.Constants[name];
        var (value, bits, signed) = Describe(managed.Value);
        var cValue = c.Value;
        var matches = signed
            ? cValue == value
            : cValue >= -(Int128.One << (bits - 1)) && cValue <= (Int128.One << bits) - 1 && (UInt128)(cValue & ((Int128.One << bits) - 1)) == (UInt128)value;
        matches.ShouldBeTrue($"{managed.DeclaringType.Name}.{name}: C# {value} (0x{value:X}, {managed.ValueType.Name}), C ({arch}) {c}");
    }

    [Fact]
    public void ConstantsNotInHeaders_AreDeclared()
    {
        var declared = UapiModel.ConstantClasses.SelectMany(c => c.GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)).Where(f => f.IsLiteral).Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        UapiModel.ConstantsNotInHeaders.Keys.Where(k => !declared.Contains(k)).ShouldBeEmpty("stale entries in UapiModel.ConstantsNotInHeaders");
    }

    [Fact]
    public void UapiClasses_HoldOnlyConstantsAndIoctlNumbers()
    {
        UapiModel.UnexpectedStaticFields().ShouldBeEmpty(
            "VfioUapi/IommuUapi/IoctlEncoding may only hold const kernel constants and static readonly uint ioctl numbers");
    }

    private static (Int128 Value, int Bits, bool Signed) Describe(object value) => value switch
    {
        byte v => (v, 8, false),
        ushort v => (v, 16, false),
        uint v => (v, 32, false),
        ulong v => (v, 64, false),
        sbyte v => (v, 8, true),
        short v => (v, 16, true),
        int v => (v, 32, true),
        long v => (v, 64, true),
        char v => (v, 16, false),
        _ => throw new InvalidOperationException($"Unsupported constant type {value.GetType()}"),
    };
}
