// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core.Interop;

internal static unsafe partial class Libc
{
    // Errno names live in one place, the public Vfio.Core.Errno enum: compare with -(int)Errno.EINTR.

    /// <summary>The errno of the last libc call on this thread, as a positive number.</summary>
    internal static int LastErrno => Marshal.GetLastPInvokeError();

    /// <summary>Folds a libc result into the port's convention: the non-negative result, or <c>-errno</c>.</summary>
    internal static int Result(int rc) => rc >= 0 ? rc : -LastErrno;

    /// <inheritdoc cref="Result(int)"/>
    internal static nint Result(nint rc) => rc >= 0 ? rc : -LastErrno;

    /// <summary><see cref="Result(int)"/> for the <c>*_raw</c> imports (no SetLastError): reads errno itself, right
    /// after the call returned, as the SetLastError stub would (saves its clearing and saving of errno, ~8 ns).</summary>
    internal static int RawResult(int rc) => rc >= 0 ? rc : -Marshal.GetLastSystemError();

    /// <inheritdoc cref="RawResult(int)"/>
    internal static nint RawResult(nint rc) => rc >= 0 ? rc : -Marshal.GetLastSystemError();
}
