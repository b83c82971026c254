// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Vfio.Core;

namespace Vfio.Backends.Legacy;

/// <summary>The legacy backend's log messages.</summary>
internal static partial class LegacyLog
{
    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "Group {Group} is a no-IOMMU group ({Node}): device {Device} can DMA anywhere in physical memory, unprotected, and the kernel is tainted (Vfio:AllowUnsafeNoIommu is set)")]
    internal static partial void NoIommu(ILogger logger, int group, string node, string device);

    [LoggerMessage(EventId = 202, Level = LogLevel.Debug, Message = "Created {Container} (IOMMU type {IommuType}, page sizes 0x{PageSizes:x}, {Ranges} IOVA ranges) for DMA space '{Space}'")]
    internal static partial void ContainerCreated(ILogger logger, string container, uint iommuType, ulong pageSizes, int ranges, string space);

    [LoggerMessage(EventId = 203, Level = LogLevel.Debug, Message = "Group {Group} could not join {Container} ({Errno}); it gets a container of its own")]
    internal static partial void JoinRefused(ILogger logger, int group, string container, Errno errno);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "VFIO_GROUP_UNSET_CONTAINER of group {Group} from {Container} failed ({Errno}); closing the group releases it")]
    internal static partial void UnsetFailed(ILogger logger, int group, string container, Errno errno);
}
