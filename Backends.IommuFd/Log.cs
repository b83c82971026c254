// SPDX-License-Identifier: MIT
using Microsoft.Extensions.Logging;
using Vfio.Core;

namespace Vfio.Backends.IommuFd;

/// <summary>The backend's source-generated log messages.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 301, Level = LogLevel.Debug, Message = "iommufd: opened /dev/iommu")]
    internal static partial void OpenedIommuFd(ILogger logger);

    [LoggerMessage(EventId = 302, Level = LogLevel.Debug, Message = "iommufd: using the passed iommufd '{Reference}'")]
    internal static partial void UsingPassedIommuFd(ILogger logger, string reference);

    [LoggerMessage(EventId = 303, Level = LogLevel.Debug, Message = "iommufd: allocated {Container} for DMA space '{Space}'")]
    internal static partial void AllocatedIoas(ILogger logger, string container, string space);

    [LoggerMessage(EventId = 304, Level = LogLevel.Debug, Message = "iommufd: allocated dirty-tracking HWPT {HwptId} in {Container} for {Device}")]
    internal static partial void AllocatedDirtyHwpt(ILogger logger, uint hwptId, string container, string device);

    [LoggerMessage(EventId = 305, Level = LogLevel.Debug, Message = "iommufd: {Device} cannot share HWPT {HwptId} ({Errno}); trying the next")]
    internal static partial void HwptIncompatible(ILogger logger, string device, uint hwptId, Errno errno);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "iommufd: VFIO_DEVICE_DETACH_IOMMUFD_PT of {Device} failed ({Errno}); closing its fd detaches it")]
    internal static partial void DetachFailed(ILogger logger, string device, Errno errno);

    [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message = "iommufd: IOMMU_DESTROY of {Kind} {Id} ({Container}) failed ({Errno}); closing the iommufd frees it")]
    internal static partial void DestroyFailed(ILogger logger, string kind, uint id, string container, Errno errno);

    [LoggerMessage(EventId = 308, Level = LogLevel.Warning, Message = "iommufd: undoing the attach of {Device} failed at a step")]
    internal static partial void UndoFailed(ILogger logger, string device, Exception exception);

    [LoggerMessage(EventId = 309, Level = LogLevel.Warning, Message = "iommufd: re-reading the IOVA ranges of {Container} after a detach failed")]
    internal static partial void RefreshFailed(ILogger logger, string container, Exception exception);

    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "iommufd: dirty tracking of {Container} {Enabled}")]
    internal static partial void DirtyTracking(ILogger logger, string container, bool enabled);
}
