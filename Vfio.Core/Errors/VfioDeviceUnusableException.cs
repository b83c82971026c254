// SPDX-License-Identifier: MIT
namespace Vfio.Core;

/// <summary>
/// The device cannot be used as it is: its IOMMU group is not viable, it is bound to another driver, it is
/// already attached, or it was removed. Retrying the same call will not help; the hint says what to change.
/// </summary>
public class VfioDeviceUnusableException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="operation">The operation that found the problem.</param>
    /// <param name="device">The device (or group) concerned.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="hint">What to do about it.</param>
    /// <param name="errno">The errno that revealed it, if any.</param>
    public VfioDeviceUnusableException(string operation, string device, string detail, string? hint = null, Errno errno = Errno.None)
        : base(errno, operation, device, hint, detail, innerException: null)
    {
    }
}
