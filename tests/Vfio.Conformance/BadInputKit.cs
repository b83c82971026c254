// SPDX-License-Identifier: MIT
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core;
using Vfio.Simulator;

namespace Vfio.Conformance;

/// <summary>What the process and the kernel hold at one moment: the bad-input cases take it before the refused call and
/// after it, and the two must be equal (nothing leaked by the failure path).</summary>
/// <param name="ProcessFds">Entries of <c>/proc/self/fd</c> (without the runtime's assemblies).</param>
/// <param name="LockedKb">The process's <c>VmLck</c> plus <c>VmPin</c> (kB): Type1 charges the first, iommufd the second.</param>
/// <param name="Kernel">The simulated kernel's objects (files, mappings, iommufd objects, pinned pages), or null on Linux.</param>
internal readonly record struct Footprint(int ProcessFds, long LockedKb, SimulatedKernelState? Kernel)
{
    internal static Footprint Of(Rig rig) => new(
        Refusal.OpenFds().Length,
        StatusKb("VmLck:") + StatusKb("VmPin:"),
        rig.Simulator?.GetState());

    private static long StatusKb(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }
}

/// <summary>The assertion every bad-input case makes: the call fails with exactly the expected exception type, the
/// message names the object and says what to do, and nothing is left behind.</summary>
internal static partial class Refusal
{
    /// <summary>Runs <paramref name="act"/>, which must throw exactly <typeparamref name="T"/>, and checks the message and
    /// the footprint (equal before and after, or <paramref name="fdDelta"/> fewer fds when the call owned one).</summary>
    /// <param name="rig">The case's machine.</param>
    /// <param name="act">The bad call.</param>
    /// <param name="mustContain">What the message must say: the object's name and words of the fix.</param>
    /// <param name="fdDelta">The expected change in the process's fd count (-1 when an owned fd is closed).</param>
    internal static T Expect<T>(Rig rig, Action act, IEnumerable<string> mustContain, int fdDelta = 0)
        where T : Exception
        => (T)Expect(typeof(T), rig, act, mustContain, fdDelta);

    /// <inheritdoc cref="Expect{T}"/>
    /// <param name="error">The exception's exact type.</param>
    internal static Exception Expect(Type error, Rig rig, Action act, IEnumerable<string> mustContain, int fdDelta = 0)
    {
        Footprint before = Footprint.Of(rig);
        for (int i = 0; i < 20; i++)
        {
            Thread.Sleep(20);
            Footprint again = Footprint.Of(rig);
            if (again == before)
            {
                break;
            }
            before = again;
        }
        string[] openBefore = OpenFds();
        Exception? thrown = null;
        try
        {
            act();
        }
        catch (Exception e)
        {
            thrown = e;
        }
        // The runtime opens and closes fds of its own now and then (a listing's directory, a socket engine): a leak is a
        // difference that stays, so the footprint is taken again for up to a second until it matches.
        Footprint expected = before with { ProcessFds = before.ProcessFds + fdDelta };
        Footprint after = Footprint.Of(rig);
        for (int i = 0; i < 20 && after != expected; i++)
        {
            Thread.Sleep(50);
            after = Footprint.Of(rig);
        }
        string[] openAfter = OpenFds();
        thrown.ShouldNotBeNull($"expected {error.Name}, but the call succeeded");
        thrown.GetType().ShouldBe(error, thrown.ToString());
        Exception e2 = thrown;
        foreach (string text in mustContain)
        {
            e2.Message.ShouldContain(text, Case.Insensitive, $"the message must say '{text}'");
        }
        if (e2 is VfioException vfio)
        {
            vfio.ObjectName.ShouldNotBeNullOrWhiteSpace(vfio.Message);
            vfio.Message.ShouldContain(vfio.ObjectName!);
            vfio.Hint.ShouldNotBeNullOrWhiteSpace($"a VfioException must say what to do: {vfio.Message}");
        }
        after.ShouldBe(expected,
            $"nothing may leak: {thrown.Message}; fds opened: [{string.Join(", ", openAfter.Except(openBefore))}], closed: [{string.Join(", ", openBefore.Except(openAfter))}]");
        return e2;
    }

    /// <summary>The process's fds with what they are open on, to say what a leak was.</summary>
    /// <remarks>Assemblies the runtime loads on first use (and keeps open) are not the library's: they are left out.</remarks>
    internal static string[] OpenFds()
        => [.. new DirectoryInfo("/proc/self/fd").GetFileSystemInfos().Select(f => $"{f.Name}->{f.LinkTarget}")
            .Where(f => !f.EndsWith(".dll", StringComparison.Ordinal) && !f.EndsWith(".so", StringComparison.Ordinal))];

    /// <summary>A new fd open on the same file as <paramref name="handle"/>, owned by the caller.</summary>
    internal static SafeFileHandle Dup(SafeHandle handle)
    {
        int fd = fcntl((int)handle.DangerousGetHandle(), F_DUPFD_CLOEXEC, 3);
        fd.ShouldBeGreaterThanOrEqualTo(0, "dup");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    private const int F_DUPFD_CLOEXEC = 1030;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);
}
