// SPDX-License-Identifier: MIT
using System.Runtime.InteropServices;

namespace Vfio.Conformance;

/// <summary>
/// Runs code without <c>CAP_SYS_ADMIN</c>: on the real kernel, on a thread of its own whose effective set lacks it
/// (capabilities are per thread; <c>capset</c> changes only the caller's, and the permitted set keeps it, so nothing else
/// of the test process loses it); on the simulator, by telling the model (<c>SimulatedTopology.CapSysAdmin</c>).
/// </summary>
internal static unsafe partial class Capabilities
{
    private const uint LinuxCapabilityVersion3 = 0x20080522;
    private const int CapSysAdmin = 21;

    internal static T WithoutSysAdmin<T>(Rig rig, Func<T> action)
    {
        if (rig.Simulator is { } simulator)
        {
            simulator.Topology.CapSysAdmin = false;
            try
            {
                return action();
            }
            finally
            {
                simulator.Topology.CapSysAdmin = true;
            }
        }
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                var header = new CapHeader { Version = LinuxCapabilityVersion3 };
                CapData* data = stackalloc CapData[2];
                Check(capget(&header, data), "capget");
                data[0].Effective &= ~(1u << CapSysAdmin);
                Check(capset(&header, data), "capset");
                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        return result;
    }

    private static void Check(int rc, string call)
    {
        if (rc != 0)
        {
            throw new InvalidOperationException($"{call} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader
    {
        public uint Version;
        public int Pid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }

    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    private static partial int capget(CapHeader* header, CapData* data);

    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    private static partial int capset(CapHeader* header, CapData* data);
}
