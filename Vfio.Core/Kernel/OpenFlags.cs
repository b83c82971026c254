// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>How <see cref="IKernel.Open"/> opens a path; <c>O_CLOEXEC</c> is always added.</summary>
[Flags]
public enum OpenFlags
{
    /// <summary><c>O_RDONLY</c>.</summary>
    ReadOnly = 0x0,
    /// <summary><c>O_WRONLY</c>.</summary>
    WriteOnly = 0x1,
    /// <summary><c>O_RDWR</c>, what VFIO and iommufd nodes need.</summary>
    ReadWrite = 0x2,
    /// <summary><c>O_NONBLOCK</c>.</summary>
    NonBlocking = 0x800,
}
