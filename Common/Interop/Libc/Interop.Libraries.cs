// SPDX-License-Identifier: MIT
namespace Vfio.Core.Interop;

/// <summary>
/// The libc calls of the library. One file per call (<c>Interop.&lt;call&gt;.cs</c>), each with its constants.
/// Every import sets the last error; callers read it on the very next line with <c>LastErrno</c>
/// and never let a <c>-1</c> leave this layer.
/// </summary>
internal static unsafe partial class Libc
{
    internal const string Name = "libc";
}
