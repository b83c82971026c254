// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Simulator;

// The pointer-shaped ioctl overloads of the port: the model sees the same raw argument the real kernel would.
public sealed partial class SimulatedKernel
{
    /// <inheritdoc/>
    public unsafe int Ioctl(SafeHandle fd, uint request, void* argument) => Ioctl(fd, request, (nint)argument);

    /// <inheritdoc/>
    public unsafe int Ioctl(SafeHandle fd, uint request, Span<byte> argument)
    {
        fixed (byte* p = argument)
        {
            return Ioctl(fd, request, (nint)p);
        }
    }
}
