// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Abi.Tests.Infrastructure;

/// <summary>
/// An architecture whose ABI the tests check: its name in test cases, its GNU triplet (the cross compiler's prefix
/// and the folder of Debian's linux-libc-dev that holds its <c>asm/</c> headers), the .NET architecture that
/// <c>IoctlEncoding</c> is asked for, and the ELF machine of the objects its compiler writes.
/// </summary>
/// <param name="Name">The name test cases carry: <c>x86_64</c>, <c>arm64</c> or <c>ppc64le</c>.</param>
/// <param name="Triplet">The GNU triplet, e.g. <c>aarch64-linux-gnu</c>.</param>
/// <param name="Architecture">The .NET architecture.</param>
/// <param name="ElfMachine"><c>e_machine</c>: 62 (EM_X86_64), 183 (EM_AARCH64), 21 (EM_PPC64).</param>
/// <param name="CompilerPackage">The Debian package that provides <c>&lt;triplet&gt;-gcc</c>.</param>
internal sealed record AbiArch(string Name, string Triplet, Architecture Architecture, ushort ElfMachine, string CompilerPackage)
{
    public static readonly AbiArch X86_64 = new("x86_64", "x86_64-linux-gnu", Architecture.X64, 62, "gcc");

    public static readonly AbiArch Arm64 = new("arm64", "aarch64-linux-gnu", Architecture.Arm64, 183, "gcc-aarch64-linux-gnu");

    public static readonly AbiArch Ppc64le = new("ppc64le", "powerpc64le-linux-gnu", Architecture.Ppc64le, 21, "gcc-powerpc64le-linux-gnu");

    /// <summary>The three LP64 little-endian architectures VFIO for .NET supports.</summary>
    public static readonly IReadOnlyList<AbiArch> All = [X86_64, Arm64, Ppc64le];

    /// <summary>The compiler: <c>&lt;triplet&gt;-gcc</c> (Debian's <c>gcc</c> provides <c>x86_64-linux-gnu-gcc</c> too, so every architecture takes the same path).</summary>
    public string Compiler => Triplet + "-gcc";

    public static AbiArch Get(string name) =>
        All.SingleOrDefault(a => a.Name == name) ?? throw new ArgumentException($"No architecture '{name}' (known: {string.Join(", ", All.Select(a => a.Name))}).", nameof(name));

    /// <summary>One theory row per architecture.</summary>
    public static TheoryData<string> Names() => [.. All.Select(a => a.Name)];

    /// <summary>One theory row per architecture and name, architecture first so a failing case names it.</summary>
    public static TheoryData<string, string> Rows(IEnumerable<string> names)
    {
        var data = new TheoryData<string, string>();
        var list = names.ToArray();
        foreach (var arch in All)
        {
            foreach (var name in list)
            {
                data.Add(arch.Name, name);
            }
        }

        return data;
    }

    public override string ToString() => Name;
}
