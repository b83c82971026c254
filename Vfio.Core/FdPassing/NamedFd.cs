// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Core;

/// <summary>A file descriptor with the name it is sent under (QEMU's <c>getfd</c>/<c>add-fd</c> idea), e.g.
/// <c>iommufd</c> or <c>0000:00:02.0</c>.</summary>
/// <param name="Name">The name the receiver asks for; 1–255 bytes of UTF-8, unique within one message.</param>
/// <param name="Handle">The fd; the sender keeps owning it (the receiver gets its own duplicate).</param>
public readonly record struct NamedFd(string Name, SafeHandle Handle);
