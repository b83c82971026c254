// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Benchmarks;

/// <summary>
/// The C baselines (bench/native/vfiobench.c) loaded into this process. bench.sh builds the shared object with gcc
/// and names it in <c>VFIO_BENCH_NATIVE</c>; the benchmark child processes inherit the variable.
/// </summary>
internal static unsafe class HotPathNative
{
    internal const string PathVariable = "VFIO_BENCH_NATIVE";

    private static readonly nint s_library = Load();

    internal static readonly delegate* unmanaged<uint*, nuint, nuint, uint> Read32Loop =
        (delegate* unmanaged<uint*, nuint, nuint, uint>)NativeLibrary.GetExport(s_library, "vb_read32_loop");

    internal static readonly delegate* unmanaged<uint*, nuint, nuint, uint, void> Write32Loop =
        (delegate* unmanaged<uint*, nuint, nuint, uint, void>)NativeLibrary.GetExport(s_library, "vb_write32_loop");

    internal static readonly delegate* unmanaged<int, byte*, nuint, nuint, long> PReadLoop =
        (delegate* unmanaged<int, byte*, nuint, nuint, long>)NativeLibrary.GetExport(s_library, "vb_pread_loop");

    internal static readonly delegate* unmanaged<int, nuint, nuint, int, long> IoctlLoop =
        (delegate* unmanaged<int, nuint, nuint, int, long>)NativeLibrary.GetExport(s_library, "vb_ioctl_loop");

    internal static readonly delegate* unmanaged<int, nuint, long> EventFdLoop =
        (delegate* unmanaged<int, nuint, long>)NativeLibrary.GetExport(s_library, "vb_eventfd_loop");

    internal static readonly delegate* unmanaged<int, int, int, nint> DeviceStart =
        (delegate* unmanaged<int, int, int, nint>)NativeLibrary.GetExport(s_library, "vb_device_start");

    internal static readonly delegate* unmanaged<nint, void> DeviceStop =
        (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(s_library, "vb_device_stop");

    internal static readonly delegate* unmanaged<int, int, nuint, long*, long> RoundTripLoop =
        (delegate* unmanaged<int, int, nuint, long*, long>)NativeLibrary.GetExport(s_library, "vb_roundtrip_loop");

    internal static readonly delegate* unmanaged<int, int> PinProcess =
        (delegate* unmanaged<int, int>)NativeLibrary.GetExport(s_library, "vb_pin_process");

    internal static readonly delegate* unmanaged<int, ulong, ulong*, nuint, long> Type1Pages =
        (delegate* unmanaged<int, ulong, ulong*, nuint, long>)NativeLibrary.GetExport(s_library, "vb_type1_pages");

    internal static readonly delegate* unmanaged<int, ulong, ulong, ulong, nuint, long> Type1Fixed =
        (delegate* unmanaged<int, ulong, ulong, ulong, nuint, long>)NativeLibrary.GetExport(s_library, "vb_type1_fixed");

    internal static readonly delegate* unmanaged<int, uint, ulong, ulong, ulong, nuint, long> IoasFixed =
        (delegate* unmanaged<int, uint, ulong, ulong, ulong, nuint, long>)NativeLibrary.GetExport(s_library, "vb_ioas_fixed");

    internal static readonly delegate* unmanaged<int, long, nuint, uint*, long> PRead32Loop =
        (delegate* unmanaged<int, long, nuint, uint*, long>)NativeLibrary.GetExport(s_library, "vb_pread32_loop");

    internal static readonly delegate* unmanaged<byte*, nuint, nuint, int, nuint, long*, long> MsiRoundTripLoop =
        (delegate* unmanaged<byte*, nuint, nuint, int, nuint, long*, long>)NativeLibrary.GetExport(s_library, "vb_msi_roundtrip_loop");

    /// <summary>The loaded shim's handle (loads it on first use).</summary>
    internal static nint Library => s_library;

    private static nint Load()
    {
        string? path = Environment.GetEnvironmentVariable(PathVariable);
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
        {
            throw new InvalidOperationException(
                $"The C baselines are not built: {PathVariable}='{path}'. Run ./bench.sh, which builds bench/native/vfiobench.c with gcc and sets it.");
        }
        return NativeLibrary.Load(path);
    }
}

/// <summary>
/// Reference imports for the H2 cost breakdown: the same calls on a raw fd (no SafeHandle reference count), with and
/// without <c>SetLastError</c>. Not for product use: a raw fd can be closed and reused under the call.
/// </summary>
internal static unsafe partial class BareLibc
{
    [LibraryImport("libc", EntryPoint = "pread64", SetLastError = true)]
    internal static partial nint PReadLastError(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "pread64")]
    internal static partial nint PRead(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlLastError(int fd, nuint request, nint argument);

    [LibraryImport("libc", EntryPoint = "ioctl")]
    internal static partial int Ioctl(int fd, nuint request, nint argument);
}
