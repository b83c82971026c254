// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Vfio.Core;

namespace Vfio.Backends.SpaprTce;

/// <summary>The sPAPR TCE backend's log messages.</summary>
internal static partial class SpaprTceLog
{
    [LoggerMessage(Level = LogLevel.Debug, Message = "{Container}: opened DMA window 0x{Start:x}+0x{Size:x} ({PageSize}-byte TCEs, {Levels} levels) for IOVA 0x{Iova:x}")]
    internal static partial void WindowOpened(ILogger logger, string container, ulong start, ulong size, ulong pageSize, int levels, ulong iova);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Container}: removed DMA window 0x{Start:x}+0x{Size:x} (its last section went)")]
    internal static partial void WindowRemoved(ILogger logger, string container, ulong start, ulong size);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Container}: creating a window of 0x{Size:x} bytes with {Levels} levels failed ({Errno}); trying {Next} levels")]
    internal static partial void LevelsRetried(ILogger logger, string container, ulong size, int levels, Errno errno, int next);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Operation} on {Container} failed ({Errno}); the kernel releases it with the container")]
    internal static partial void Failed(ILogger logger, string operation, string container, Errno errno);
}
