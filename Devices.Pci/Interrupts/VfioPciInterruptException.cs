// SPDX-License-Identifier: MIT
using Vfio.Core;

namespace Vfio.Devices.Pci;

/// <summary>
/// An interrupt of a PCI device could not be set up as asked: it does not exist on the device, more vectors were
/// asked for than it has, or the host could allocate fewer. <see cref="Failure"/> says which, <see cref="Limit"/>
/// gives the number that would work, and the message names the device and what to do. A refusal by the kernel for
/// any other reason is a plain <see cref="VfioException"/> with its errno.
/// </summary>
public class VfioPciInterruptException : VfioException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="failure">Which rule refused the request.</param>
    /// <param name="operation">The operation, e.g. <c>enable MSI-X</c>.</param>
    /// <param name="objectName">The device and interrupt, e.g. <c>0000:00:03.0 MSI-X</c>.</param>
    /// <param name="detail">What was refused and why.</param>
    /// <param name="hint">What to do about it.</param>
    /// <param name="limit">The device's maximum (<see cref="PciInterruptFailure.TooManyVectors"/>) or the host's
    /// (<see cref="PciInterruptFailure.VectorsUnavailable"/>); 0 otherwise.</param>
    public VfioPciInterruptException(PciInterruptFailure failure, string operation, string objectName, string detail, string hint, int limit = 0)
        : base(operation, objectName, detail, hint)
    {
        Failure = failure;
        Limit = limit;
    }

    /// <summary>Which rule refused the request.</summary>
    public PciInterruptFailure Failure { get; }

    /// <summary>The most vectors that would have worked: the device's maximum for
    /// <see cref="PciInterruptFailure.TooManyVectors"/>, the host's for <see cref="PciInterruptFailure.VectorsUnavailable"/>;
    /// 0 otherwise.</summary>
    public int Limit { get; }
}
