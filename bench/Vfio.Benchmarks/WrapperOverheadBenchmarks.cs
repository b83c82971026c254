// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Benchmarks;

/// <summary>
/// What the H2 syscall wrappers cost besides the syscall: each benchmark calls <c>vb_fail</c> (bench/native), which
/// fails with ENOTTY without entering the kernel, through one more layer of the wrapper than the one before: a bare
/// transition on an int fd, + SetLastError, + SafeHandle marshalling (the shape of the <c>Libc</c> imports), + the
/// EINTR loop and errno capture (the kernel port's former shape), and <see cref="LinuxKernel"/>'s current shape: one
/// reference held around a raw-fd import without SetLastError, errno read before the release.
/// </summary>
[MemoryDiagnoser]
[BenchmarkCategory("H2-overhead")]
public partial class WrapperOverheadBenchmarks : IDisposable
{
    internal const int Ops = 256;
    private SafeFileHandle _fd = null!;

    static WrapperOverheadBenchmarks()
    {
        // "vfiobench" is the shim bench.sh built (HotPathNative loads it, or says how to build it).
        NativeLibrary.SetDllImportResolver(typeof(WrapperOverheadBenchmarks).Assembly,
            (name, _, _) => name == "vfiobench" ? HotPathNative.Library : 0);
    }

    [GlobalSetup]
    public void Setup() => _fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);

    [GlobalCleanup]
    public void Dispose()
    {
        _fd?.Dispose();
        GC.SuppressFinalize(this);
    }

    [LibraryImport("vfiobench", EntryPoint = "vb_fail")]
    private static partial int FailInt(int fd);

    [LibraryImport("vfiobench", EntryPoint = "vb_fail", SetLastError = true)]
    private static partial int FailIntLastError(int fd);

    [LibraryImport("vfiobench", EntryPoint = "vb_fail")]
    private static partial int FailHandle(SafeHandle fd);

    [LibraryImport("vfiobench", EntryPoint = "vb_fail", SetLastError = true)]
    private static partial int FailHandleLastError(SafeHandle fd);

    /// <summary>The bare transition: int fd, errno not read.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public int IntFd()
    {
        int fd = (int)_fd.DangerousGetHandle(), sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            sum += FailInt(fd);
        }
        return sum;
    }

    /// <summary>+ errno read right after the call (no SetLastError stub work).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int IntFdReadErrno()
    {
        int fd = (int)_fd.DangerousGetHandle(), sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            int rc = FailInt(fd);
            sum += rc < 0 ? -Marshal.GetLastSystemError() : rc;
        }
        return sum;
    }

    /// <summary>+ SetLastError (clear errno before, save it after).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int IntFdSetLastError()
    {
        int fd = (int)_fd.DangerousGetHandle(), sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            int rc = FailIntLastError(fd);
            sum += rc < 0 ? -Marshal.GetLastPInvokeError() : rc;
        }
        return sum;
    }

    /// <summary>SafeHandle marshalling (a reference count around the call), no SetLastError.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int SafeHandleFd()
    {
        int sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            sum += FailHandle(_fd);
        }
        return sum;
    }

    /// <summary>SafeHandle + SetLastError: the shape of the Libc imports.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int SafeHandleSetLastError()
    {
        int sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            int rc = FailHandleLastError(_fd);
            sum += rc < 0 ? -Marshal.GetLastPInvokeError() : rc;
        }
        return sum;
    }

    /// <summary>+ the EINTR loop and Result: the shape LinuxKernel.Ioctl had before issue 11.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int KernelPortShape()
    {
        int sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            int rc;
            do
            {
                rc = Libc.Result(FailHandleLastError(_fd));
            }
            while (rc == -(int)Errno.EINTR);
            sum += rc;
        }
        return sum;
    }

    /// <summary>The kernel port's shape since issue 11: one reference held around a raw-fd call, errno read directly.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int KernelPortRawShape()
    {
        int sum = 0;
        for (int i = 0; i < Ops; i++)
        {
            bool added = false;
            _fd.DangerousAddRef(ref added);
            try
            {
                int raw = (int)_fd.DangerousGetHandle(), rc;
                do
                {
                    rc = Libc.RawResult(FailInt(raw));
                }
                while (rc == -(int)Errno.EINTR);
                sum += rc;
            }
            finally
            {
                _fd.DangerousRelease();
            }
        }
        return sum;
    }
}
