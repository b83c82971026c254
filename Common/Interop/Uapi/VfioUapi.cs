// SPDX-License-Identifier: MIT
// include/uapi/linux/vfio.h (Linux 6.12): the constants and ioctl numbers, split by topic over the Vfio.*.cs files.
namespace Vfio.Core.Interop;

/// <summary>
/// Constants and ioctl request numbers of <c>linux/vfio.h</c> (Linux 6.12), spelled as in the header.
/// </summary>
/// <remarks>
/// This is the kernel's ABI, public so that backends, device layers and kernel models (the simulator) in other
/// assemblies share one definition. Ioctl numbers are computed for the running architecture by
/// <see cref="IoctlEncoding"/>; the ABI tests compare every value with what gcc computes from the kernel headers.
/// </remarks>
internal static partial class VfioUapi
{
    /// <summary><c>VFIO_API_VERSION</c>, the value <c>VFIO_GET_API_VERSION</c> returns.</summary>
    public const int VFIO_API_VERSION = 0;
}
