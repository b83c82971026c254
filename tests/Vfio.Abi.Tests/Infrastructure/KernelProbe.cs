// SPDX-License-Identifier: MIT
using System.Collections.Concurrent;
using System.Text;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>A struct member as gcc sees it.</summary>
/// <param name="Offset"><c>offsetof</c>.</param>
/// <param name="Size"><c>sizeof</c> of the member (of the whole array for an array member).</param>
/// <param name="Align"><c>_Alignof</c> of the member's type.</param>
/// <param name="ElementSize"><c>sizeof</c> of one element for an array member, else <paramref name="Size"/>.</param>
/// <param name="Kind"><c>u</c> unsigned, <c>s</c> signed, <c>p</c> pointer, <c>r</c> struct, <c>n</c> union, <c>?</c> other.</param>
internal sealed record CField(ulong Offset, ulong Size, ulong Align, ulong ElementSize, char Kind);

/// <summary>An integer macro or enumerator as gcc evaluates it.</summary>
/// <param name="Bits">The value converted to <c>unsigned long long</c>.</param>
/// <param name="IsNegative">Whether the value is below zero (for signed expressions such as <c>-1</c> or <c>(1 &lt;&lt; 31)</c>).</param>
/// <param name="Size"><c>sizeof</c> of the expression.</param>
internal sealed record CConstant(ulong Bits, bool IsNegative, ulong Size)
{
    public Int128 Value => IsNegative ? (long)Bits : Bits;

    public override string ToString() =>
        IsNegative
            ? $"{Value} (0x{Bits:X}, {Size}-byte signed)"
            : $"{Value} (0x{Bits:X}, {Size}-byte)";
}

/// <summary>
/// The kernel side of the ABI for one architecture: a C file generated from <see cref="UapiModel"/> that holds every
/// value as initialised data (<c>sizeof</c>, <c>_Alignof</c>, <c>offsetof</c>, macro values, ioctl numbers),
/// compiled with that architecture's gcc (<c>-c</c>, never run) against the 6.12 headers and that architecture's
/// <c>asm/</c>, and read back from the ELF object.
/// </summary>
internal sealed class KernelProbe
{
    private const string KindMacro = """
        #define VFIO_ABI_KIND(x) (__builtin_classify_type(x) == 5 ? 'p' : __builtin_classify_type(x) == 12 ? 'r' : \
            __builtin_classify_type(x) == 13 ? 'n' : _Generic((x), \
                signed char: 's', short: 's', int: 's', long: 's', long long: 's', \
                char: ((char)-1 < 0 ? 's' : 'u'), _Bool: 'u', unsigned char: 'u', unsigned short: 'u', \
                unsigned int: 'u', unsigned long: 'u', unsigned long long: 'u', default: '?'))

        """;

    private const string Includes = """
        #include <stddef.h>
        #include <linux/version.h>
        #include <linux/types.h>
        #include <linux/vfio.h>
        #include <linux/iommufd.h>

        """;

    private const string VersionKey = "version";

    private static readonly ConcurrentDictionary<AbiArch, Lazy<KernelProbe>> s_probes = new();

    private KernelProbe(AbiArch arch, CObjectProbeOutput output)
    {
        Arch = arch;
        CompileErrors = output.CompileErrors;
        IncludedHeaders = output.IncludedHeaders;
        ElfMachine = output.Object.Machine;
        ElfFlags = output.Object.Flags;
        ulong[] Read(string key) =>
            output.Object.Values(output.Symbols[key]) ?? throw new InvalidDataException($"{output.Object.Path} has no symbol {output.Symbols[key]} ({key}).");

        LinuxVersionCode = Read(VersionKey)[0];
        foreach (var s in UapiModel.Structs.Where(s => !CompileErrors.ContainsKey(StructKey(s.Name))))
        {
            var v = Read(StructKey(s.Name));
            Structs[s.Name] = (v[0], v[1]);
            var at = 2;
            foreach (var f in s.Fields)
            {
                Fields[(s.Name, f.Name)] = new CField(v[at], v[at + 1], v[at + 2], v[at + 3], (char)v[at + 4]);
                at += 5;
            }

            foreach (var flex in s.FlexibleArrays)
            {
                FlexibleArrays[(s.Name, flex.Member)] = v[at++];
            }
        }

        foreach (var k in UapiModel.Constants.Where(k => !CompileErrors.ContainsKey(ConstantKey(k.Name))))
        {
            var key = output.Symbols[ConstantKey(k.Name)];
            if (k.IsString)
            {
                var bytes = output.Object.Data(key)!;
                Strings[k.Name] = Encoding.ASCII.GetString(bytes, 0, Array.IndexOf(bytes, (byte)0) is var end and >= 0 ? end : bytes.Length);
            }
            else
            {
                var v = Read(ConstantKey(k.Name));
                Constants[k.Name] = new CConstant(v[0], v[1] != 0, v[2]);
            }
        }

        foreach (var i in UapiModel.Ioctls.Where(i => !CompileErrors.ContainsKey(IoctlKey(i.Name))))
        {
            Ioctls[i.Name] = Read(IoctlKey(i.Name))[0];
        }
    }

    public AbiArch Arch { get; }

    public ushort ElfMachine { get; }

    public uint ElfFlags { get; }

    public ulong LinuxVersionCode { get; }

    public IReadOnlyList<string> IncludedHeaders { get; }

    public IReadOnlyDictionary<string, string> CompileErrors { get; }

    public Dictionary<string, (ulong Size, ulong Align)> Structs { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string Struct, string Field), CField> Fields { get; } = [];

    public Dictionary<(string Struct, string Member), ulong> FlexibleArrays { get; } = [];

    public Dictionary<string, CConstant> Constants { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string> Strings { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, ulong> Ioctls { get; } = new(StringComparer.Ordinal);

    /// <summary>The probe of the architecture named <paramref name="arch"/>, compiled once per test run.</summary>
    public static KernelProbe For(string arch) => For(AbiArch.Get(arch));

    public static KernelProbe For(AbiArch arch) => s_probes.GetOrAdd(arch, a => new Lazy<KernelProbe>(() => Create(a))).Value;

    public static string StructKey(string name) => "struct " + name;

    public static string ConstantKey(string name) => "const " + name;

    public static string IoctlKey(string name) => "ioctl " + name;

    /// <summary>Fails the test with gcc's message when the item did not compile (e.g. a name that is not in the headers).</summary>
    public void ThrowIfNotCompiled(string key)
    {
        if (CompileErrors.TryGetValue(key, out var error))
        {
            Assert.Fail($"{key} does not compile for {Arch.Name} against the 6.12 headers ({UapiHeaders.Current.Include}):\n{error}");
        }
    }

    private static KernelProbe Create(AbiArch arch)
    {
        var items = new List<CObjectItem> { new(VersionKey, "unsigned long long", "{ LINUX_VERSION_CODE }") };
        items.AddRange(UapiModel.Structs.Select(StructItem));
        items.AddRange(UapiModel.Constants.Select(ConstantItem));
        items.AddRange(UapiModel.Ioctls.Select(i => new CObjectItem(IoctlKey(i.Name), "unsigned long long", $"{{ (unsigned long long)({i.Name}) }}")));
        var output = CObjectProbe.Compile(arch, UapiHeaders.Current.IncludeArgs(arch), Includes + KindMacro, items);
        return new KernelProbe(arch, output);
    }

    /// <summary><c>{ sizeof, _Alignof, then per field offset, size, alignment, element size, kind, then each flexible array's offset }</c>.</summary>
    private static CObjectItem StructItem(KernelStruct s)
    {
        var type = $"struct {s.Name}";
        var values = new List<string> { $"sizeof({type})", $"_Alignof({type})" };
        foreach (var f in s.Fields)
        {
            var member = $"(({type} *)0)->{f.Name}";
            var element = f.IsFixedBuffer ? member + "[0]" : member;
            values.AddRange([$"offsetof({type}, {f.Name})", $"sizeof({member})", $"_Alignof(__typeof__({member}))", $"sizeof({element})", $"VFIO_ABI_KIND({element})"]);
        }

        values.AddRange(s.FlexibleArrays.Select(flex => $"offsetof({type}, {flex.Member})"));
        return new CObjectItem(StructKey(s.Name), "unsigned long long", "{\n    " + string.Join(",\n    ", values) + "\n}");
    }

    /// <summary>A string macro as a <c>char</c> array; a number as <c>{ value, value &lt; 0, sizeof(value) }</c>.</summary>
    private static CObjectItem ConstantItem(KernelConstant k) =>
        k.IsString
            ? new(ConstantKey(k.Name), "char", k.Name)
            : new(ConstantKey(k.Name), "unsigned long long", $"{{ (unsigned long long)({k.Name}), ({k.Name}) < 0, sizeof({k.Name}) }}");
}
