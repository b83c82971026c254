// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>The access a mapping allows (<c>PROT_*</c>).</summary>
[Flags]
public enum MemoryProtection
{
    /// <summary><c>PROT_NONE</c>.</summary>
    None = 0,
    /// <summary><c>PROT_READ</c>.</summary>
    Read = 1,
    /// <summary><c>PROT_WRITE</c>.</summary>
    Write = 2,
    /// <summary><c>PROT_READ | PROT_WRITE</c>.</summary>
    ReadWrite = Read | Write,
}
