// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

/// <summary>
/// Computes VFIO and iommufd ioctl request numbers for a CPU architecture.
/// </summary>
/// <remarks>
/// Every VFIO and iommufd ioctl is <c>_IO(';', nr)</c>: no size and no direction bits, so a number never
/// changes when its structure grows. <c>_IOC_NONE</c> is 0 on x86-64, arm64, riscv, s390 and loongarch, so the
/// number is <c>0x3B00 | nr</c>; on powerpc (the sPAPR hosts), mips, sparc and alpha <c>_IOC_NONE</c> is 1 at
/// bit 29, so the number also has <c>0x20000000</c> set (include/uapi/asm-generic/ioctl.h and the per-arch
/// overrides).
/// </remarks>
internal static class IoctlEncoding
{
    /// <summary>The ioctl type of VFIO and iommufd, <c>';'</c>.</summary>
    public const uint VFIO_TYPE = ';';

    /// <summary>The first VFIO ioctl number (<c>VFIO_BASE</c>).</summary>
    public const uint VFIO_BASE = 100;

    /// <summary>The first iommufd ioctl number (<c>IOMMUFD_CMD_BASE</c>).</summary>
    public const uint IOMMUFD_CMD_BASE = 0x80;

    /// <summary>The architecture this process runs on.</summary>
    public static Architecture Current { get; } = RuntimeInformation.ProcessArchitecture;

    /// <summary><c>_IO(';', nr)</c> for the architecture this process runs on.</summary>
    /// <param name="nr">The command number (<c>VFIO_BASE + n</c> or <c>IOMMUFD_CMD_BASE + n</c>).</param>
    public static uint Io(uint nr) => Io(nr, Current);

    /// <summary><c>_IO(';', nr)</c> for <paramref name="architecture"/>.</summary>
    /// <param name="nr">The command number, 0–255.</param>
    /// <param name="architecture">The target architecture.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nr"/> does not fit the 8-bit number field.</exception>
    public static uint Io(uint nr, Architecture architecture)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(nr, 0xFFu);
        return DirectionNone(architecture) | (VFIO_TYPE << 8) | nr;
    }

    /// <summary>The encoded <c>_IOC_NONE</c> direction bits of <paramref name="architecture"/>.</summary>
    /// <param name="architecture">The target architecture.</param>
    public static uint DirectionNone(Architecture architecture) => architecture switch
    {
        Architecture.Ppc64le => 1u << 29,
        Architecture.X64 or Architecture.Arm64 or Architecture.Arm or Architecture.X86 or Architecture.RiscV64
            or Architecture.S390x or Architecture.LoongArch64 or Architecture.Armv6 => 0u,
        _ => throw new PlatformNotSupportedException($"The ioctl encoding of {architecture} is not known."),
    };
}
