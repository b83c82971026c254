// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Vfio.Core.Tests;

/// <summary>A kernel port whose every call is unsupported: a fake overrides only the calls its test expects.</summary>
internal abstract class UnsupportedKernel : IKernel
{
    public virtual int Open(string path, OpenFlags flags, out SafeFileHandle handle) => throw new NotSupportedException();
    public virtual int Ioctl(SafeHandle fd, uint request, nint argument) => throw new NotSupportedException();
    public virtual unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => throw new NotSupportedException();
    public virtual int Ioctl(SafeHandle fd, uint request, Span<byte> argument) => throw new NotSupportedException();
    public virtual long PRead(SafeHandle fd, Span<byte> buffer, long offset) => throw new NotSupportedException();
    public virtual long PWrite(SafeHandle fd, ReadOnlySpan<byte> buffer, long offset) => throw new NotSupportedException();
    public virtual int Map(SafeHandle fd, long offset, ulong length, MemoryProtection protection, out MemoryMapping? mapping) => throw new NotSupportedException();
    public virtual int MapAligned(SafeHandle fd, long offset, ulong length, MemoryProtection protection, ulong alignment, out MemoryMapping? mapping) => throw new NotSupportedException();
    public virtual int MapAnonymous(ulong length, out MemoryMapping? mapping) => throw new NotSupportedException();
    public virtual int LockMemory(MemoryMapping mapping) => throw new NotSupportedException();
    public virtual int GetStatus(SafeHandle fd, out FileStatus status) => throw new NotSupportedException();
    public virtual int ReadLink(string path, out string target) => throw new NotSupportedException();
    public virtual int ReadText(string path, out string text) => throw new NotSupportedException();
    public virtual int ListDirectory(string path, out string[] entries) => throw new NotSupportedException();
    public virtual bool Exists(string path) => throw new NotSupportedException();
}
