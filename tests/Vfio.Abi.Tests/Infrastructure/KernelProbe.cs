// SPDX-License-Identifier: MIT
using System.Globalization;
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
/// The kernel side of the ABI: a C program generated from <see cref="UapiModel"/>, compiled with gcc against the
/// 6.12 headers and run. <see cref="Host"/> uses the host architecture's <c>asm/</c> headers (structs, constants,
/// ioctls); <see cref="Ppc64le"/> compiles the ioctl numbers once more with powerpc64le's <c>asm/ioctl.h</c>
/// (only preprocessor arithmetic, so the host compiler computes the ppc64le values).
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
        #include <stdio.h>
        #include <linux/version.h>
        #include <linux/types.h>
        #include <linux/vfio.h>
        #include <linux/iommufd.h>

        """;

    private static readonly Lazy<KernelProbe> s_host = new(() => Create(UapiHeaders.Current.HostIncludeArgs, everything: true));
    private static readonly Lazy<KernelProbe> s_ppc64le = new(CreatePpc64le);

    private KernelProbe(CProbeOutput output)
    {
        CompileErrors = output.CompileErrors;
        IncludedHeaders = output.IncludedHeaders;
        foreach (var r in output.Records)
        {
            switch (r[0])
            {
                case "V":
                    LinuxVersionCode = Parse(r[1]);
                    break;
                case "S":
                    Structs[r[1]] = (Parse(r[2]), Parse(r[3]));
                    break;
                case "F":
                    Fields[(r[1], r[2])] = new CField(Parse(r[3]), Parse(r[4]), Parse(r[5]), Parse(r[6]), r[7][0]);
                    break;
                case "X":
                    FlexibleArrays[(r[1], r[2])] = Parse(r[3]);
                    break;
                case "C":
                    Constants[r[1]] = new CConstant(Parse(r[2]), r[3] != "0", Parse(r[4]));
                    break;
                case "T":
                    Strings[r[1]] = r[2];
                    break;
                case "I":
                    Ioctls[r[1]] = Parse(r[2]);
                    break;
                default:
                    throw new InvalidOperationException($"Unexpected probe record: {string.Join('\t', r)}");
            }
        }
    }

    public static KernelProbe Host => s_host.Value;

    public static KernelProbe Ppc64le => s_ppc64le.Value;

    public ulong LinuxVersionCode { get; }

    public IReadOnlyList<string> IncludedHeaders { get; }

    public IReadOnlyDictionary<string, string> CompileErrors { get; }

    public Dictionary<string, (ulong Size, ulong Align)> Structs { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string Struct, string Field), CField> Fields { get; } = [];

    public Dictionary<(string Struct, string Member), ulong> FlexibleArrays { get; } = [];

    public Dictionary<string, CConstant> Constants { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string> Strings { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, ulong> Ioctls { get; } = new(StringComparer.Ordinal);

    public static string StructKey(string name) => "struct " + name;

    public static string ConstantKey(string name) => "const " + name;

    public static string IoctlKey(string name) => "ioctl " + name;

    /// <summary>Fails the test with gcc's message when the item did not compile (e.g. a name that is not in the headers).</summary>
    public void ThrowIfNotCompiled(string key)
    {
        if (CompileErrors.TryGetValue(key, out var error))
        {
            Assert.Fail($"{key} does not compile against the 6.12 headers ({UapiHeaders.Current.Include}):\n{error}");
        }
    }

    private static KernelProbe CreatePpc64le()
    {
        var headers = UapiHeaders.Current;
        if (!File.Exists(Path.Combine(headers.Ppc64leInclude, "asm", "ioctl.h")))
        {
            throw new InvalidOperationException(
                $"{headers.Ppc64leInclude}/asm/ioctl.h does not exist. Debian's linux-libc-dev 6.12 ships it; run `sudo {RepoLayout.FetchScript}` " +
                "or set VFIO_UAPI_PPC64LE_INCLUDE to a directory holding powerpc64le's asm/.");
        }

        return Create(headers.Ppc64leIncludeArgs, everything: false);
    }

    private static KernelProbe Create(IReadOnlyList<string> includeArgs, bool everything)
    {
        var items = new List<CProbeItem>();
        if (everything)
        {
            items.AddRange(UapiModel.Structs.Select(StructItem));
            items.AddRange(UapiModel.Constants.Select(ConstantItem));
        }

        items.AddRange(UapiModel.Ioctls.Select(i => new CProbeItem(
            IoctlKey(i.Name),
            $"        printf(\"I\\t{i.Name}\\t%llu\\n\", (unsigned long long)({i.Name}));\n")));

        var prelude = Includes + KindMacro;
        var output = CProbe.Run(
            UapiHeaders.Current.Compiler,
            includeArgs,
            prelude,
            [new CProbeItem("version", "        printf(\"V\\t%d\\n\", (int)LINUX_VERSION_CODE);\n"), .. items]);
        return new KernelProbe(output);
    }

    private static CProbeItem StructItem(KernelStruct s)
    {
        var c = new StringBuilder();
        var type = $"struct {s.Name}";
        c.Append(CultureInfo.InvariantCulture, $"        printf(\"S\\t{s.Name}\\t%zu\\t%zu\\n\", sizeof({type}), _Alignof({type}));\n");
        foreach (var f in s.Fields)
        {
            var member = $"(({type} *)0)->{f.Name}";
            var element = f.IsFixedBuffer ? member + "[0]" : member;
            c.Append(CultureInfo.InvariantCulture,
                $"        printf(\"F\\t{s.Name}\\t{f.Name}\\t%zu\\t%zu\\t%zu\\t%zu\\t%c\\n\", offsetof({type}, {f.Name}), sizeof({member}), _Alignof(__typeof__({member})), sizeof({element}), VFIO_ABI_KIND({element}));\n");
        }

        foreach (var flex in s.FlexibleArrays)
        {
            c.Append(CultureInfo.InvariantCulture, $"        printf(\"X\\t{s.Name}\\t{flex.Member}\\t%zu\\n\", offsetof({type}, {flex.Member}));\n");
        }

        return new CProbeItem(StructKey(s.Name), c.ToString());
    }

    private static CProbeItem ConstantItem(KernelConstant k) =>
        new(ConstantKey(k.Name), k.IsString
            ? $"        printf(\"T\\t{k.Name}\\t%s\\n\", _Generic(({k.Name}), char *: ({k.Name}), const char *: ({k.Name}), default: \"<not a string>\"));\n"
            : $"        printf(\"C\\t{k.Name}\\t%llu\\t%d\\t%zu\\n\", (unsigned long long)({k.Name}), ({k.Name}) < 0, sizeof({k.Name}));\n");

    private static ulong Parse(string text) => ulong.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);
}
