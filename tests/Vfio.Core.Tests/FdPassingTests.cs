// SPDX-License-Identifier: MIT
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Shouldly;
using Vfio.Core.Interop;

namespace Vfio.Core.Tests;

public sealed class FdPassingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly IKernel _kernel = LinuxKernel.Instance;

    /// <summary>A connected pair of Unix sockets of <paramref name="type"/>, through a listening socket in /tmp.</summary>
    private static (Socket A, Socket B) Pair(SocketType type = SocketType.Stream)
    {
        string path = TestFiles.TempPath(".sock");
        using var listener = new Socket(AddressFamily.Unix, type, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var a = new Socket(AddressFamily.Unix, type, ProtocolType.Unspecified);
        a.Connect(new UnixDomainSocketEndPoint(path));
        Socket b = listener.Accept();
        File.Delete(path);
        return (a, b);
    }

    [Theory]
    [InlineData(SocketType.Stream)]
    [InlineData(SocketType.Seqpacket)]
    public void SendReceive_TwoNamedFds_ArriveAsNewFdsOfTheSameFiles(SocketType type)
    {
        (Socket a, Socket b) = Pair(type);
        using (a)
        using (b)
        using (SafeFileHandle memfd = TestFiles.MemFd(4096))
        using (var evt = new InterruptEvent())
        {
            FdPassing.Send(a, [new NamedFd("iommufd", memfd), new NamedFd("0000:00:02.0", evt.Handle)]);
            using ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            received.Names.ShouldBe(["iommufd", "0000:00:02.0"]);

            using SafeFileHandle file = received.Take("iommufd");
            file.DangerousGetHandle().ShouldNotBe(memfd.DangerousGetHandle());
            (Libc.fcntl(file, Libc.F_GETFD, 0) & Libc.FD_CLOEXEC).ShouldBe(Libc.FD_CLOEXEC);
            _kernel.GetStatus(file, out FileStatus got).ShouldBe(0);
            _kernel.GetStatus(memfd, out FileStatus sent).ShouldBe(0);
            got.Inode.ShouldBe(sent.Inode);

            // Signalling through the received fd wakes the original event.
            using var evtCopy = new InterruptEvent(received.Take("0000:00:02.0"), ownsHandle: true);
            evtCopy.Signal(2);
            evt.Wait().ShouldBe(2UL);
        }
    }

    [Fact]
    public void Take_Twice_ThrowsInvalidOperation_UnknownName_ThrowsKeyNotFound()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var evt = new InterruptEvent())
        {
            FdPassing.Send(a, [new NamedFd("event", evt.Handle)]);
            using ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            Should.Throw<KeyNotFoundException>(() => received.Take("iommufd")).Message.ShouldContain("event");
            received.Take("event").Dispose();
            Should.Throw<InvalidOperationException>(() => received.Take("event"));
            received.TryTake("event", out _).ShouldBeFalse();
        }
    }

    [Fact]
    public void Dispose_UntakenFds_AreClosed()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var evt = new InterruptEvent())
        {
            FdPassing.Send(a, [new NamedFd("event", evt.Handle)]);
            ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            received.TryTake("event", out SafeFileHandle? peek).ShouldBeTrue();
            int number = (int)peek!.DangerousGetHandle();
            peek.Dispose();
            received.Dispose();
            Libc.fcntl(number, Libc.F_GETFD, 0).ShouldBe(-1);
        }
    }

    [Fact]
    public async Task ReceiveAsync_SentLater_Completes()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var evt = new InterruptEvent())
        {
            ValueTask<ReceivedFds> pending = FdPassing.ReceiveAsync(b, Ct);
            await Task.Delay(20, Ct);
            pending.IsCompleted.ShouldBeFalse();
            FdPassing.Send(a, [new NamedFd("late", evt.Handle)]);
            using ReceivedFds received = await pending.AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
            received.Names.ShouldBe(["late"]);
        }
    }

    [Fact]
    public async Task ReceiveAsync_Cancelled_Throws()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        {
            using var cts = new CancellationTokenSource(50);
            await Should.ThrowAsync<OperationCanceledException>(async () => await FdPassing.ReceiveAsync(b, cts.Token));
        }
    }

    [Fact]
    public void Receive_TwoMessagesBackToBack_EachGetsItsOwnFds()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var first = new InterruptEvent())
        using (var second = new InterruptEvent())
        {
            FdPassing.Send(a, [new NamedFd("first", first.Handle)]);
            FdPassing.Send(a, [new NamedFd("second", second.Handle)]);
            using ReceivedFds one = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            using ReceivedFds two = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            one.Names.ShouldBe(["first"]);
            two.Names.ShouldBe(["second"]);
        }
    }

    [Fact]
    public void Receive_PeerClosed_ThrowsVfioException()
    {
        (Socket a, Socket b) = Pair();
        using (b)
        {
            a.Dispose();
            Should.Throw<VfioException>(() => FdPassing.Receive(b, TimeSpan.FromSeconds(10))).Message.ShouldContain("closed");
        }
    }

    [Fact]
    public void Receive_NothingSent_TimesOut()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        {
            Should.Throw<TimeoutException>(() => FdPassing.Receive(b, TimeSpan.FromMilliseconds(50)));
        }
    }

    [Fact]
    public void Receive_NotAFrame_ThrowsVfioException()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        {
            a.Send("GARBAGE!"u8);
            Should.Throw<VfioException>(() => FdPassing.Receive(b, TimeSpan.FromSeconds(10))).Message.ShouldContain("VFD1");
        }
    }

    [Fact]
    public void Receive_NamesWithoutFds_ThrowsAndCountsMismatch()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        {
            // A well-formed frame naming one fd, sent with plain send: no SCM_RIGHTS.
            byte[] name = Encoding.UTF8.GetBytes("iommufd");
            byte[] frame = new byte[8 + 2 + 2 + name.Length];
            BitConverter.GetBytes(0x31444656u).CopyTo(frame, 0);
            BitConverter.GetBytes((uint)(2 + 2 + name.Length)).CopyTo(frame, 4);
            BitConverter.GetBytes((ushort)1).CopyTo(frame, 8);
            BitConverter.GetBytes((ushort)name.Length).CopyTo(frame, 10);
            name.CopyTo(frame, 12);
            a.Send(frame);
            Should.Throw<VfioException>(() => FdPassing.Receive(b, TimeSpan.FromSeconds(10))).Message.ShouldContain("0 arrived");
        }
    }

    [Fact]
    public void Send_BadArguments_Throw()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var evt = new InterruptEvent())
        {
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, []));
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, [new NamedFd("", evt.Handle)]));
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, [new NamedFd(new string('x', 256), evt.Handle)]));
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, [new NamedFd("x", evt.Handle), new NamedFd("x", evt.Handle)]));
            var closed = new SafeFileHandle(-1, ownsHandle: false);
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, [new NamedFd("closed", closed)]));
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            Should.Throw<ArgumentException>(() => FdPassing.Send(tcp, [new NamedFd("x", evt.Handle)]));
        }
    }

    [Fact]
    public void SendReceive_MaximumFdCount_AllArrive()
    {
        (Socket a, Socket b) = Pair();
        using (a)
        using (b)
        using (var evt = new InterruptEvent())
        {
            var fds = Enumerable.Range(0, FdPassing.MaxFdsPerMessage).Select(i => new NamedFd($"fd{i}", evt.Handle)).ToArray();
            FdPassing.Send(a, fds);
            using ReceivedFds received = FdPassing.Receive(b, TimeSpan.FromSeconds(10));
            received.Names.Count.ShouldBe(FdPassing.MaxFdsPerMessage);
            Should.Throw<ArgumentException>(() => FdPassing.Send(a, [.. fds, new NamedFd("one-too-many", evt.Handle)]));
        }
    }

    [Fact]
    public void AdoptInherited_NotOpen_ThrowsVfioExceptionWithEbadf()
    {
        VfioException e = Should.Throw<VfioException>(() => FdPassing.AdoptInherited(1_000_000, ownsHandle: true));
        e.Errno.ShouldBe(Errno.EBADF);
        e.ObjectName.ShouldBe("fd 1000000");
        e.Message.ShouldContain("launcher");
        Should.Throw<ArgumentOutOfRangeException>(() => FdPassing.AdoptInherited(-1, ownsHandle: false));
    }

    [Fact]
    public void AdoptInherited_Borrowed_DoesNotClose_Owned_Closes()
    {
        using SafeFileHandle memfd = TestFiles.MemFd(4096);
        int dup = Libc.fcntl(memfd, Libc.F_DUPFD_CLOEXEC, 0);
        using (SafeFileHandle borrowed = FdPassing.AdoptInherited(dup, ownsHandle: false))
        {
            _kernel.GetStatus(borrowed, out _).ShouldBe(0);
        }
        Libc.fcntl(dup, Libc.F_GETFD, 0).ShouldBeGreaterThanOrEqualTo(0);
        using (FdPassing.AdoptInherited(dup, ownsHandle: true))
        {
        }
        Libc.fcntl(dup, Libc.F_GETFD, 0).ShouldBe(-1);
    }

    // ---- Between two real processes ----

    private static Process StartPeer(params string[] arguments)
    {
        string peer = Path.Combine(AppContext.BaseDirectory, "Vfio.FdPeer.dll");
        var start = new ProcessStartInfo(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(peer);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return Process.Start(start)!;
    }

    private static async Task<int> FinishAsync(Process process)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        Task<string> stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        string err = await stderr;
        _ = await stdout;
        err.ShouldBeEmpty();
        return process.ExitCode;
    }

    [Fact]
    public async Task TwoProcesses_PeerSendsFds_ThisProcessUsesThem()
    {
        string socketPath = TestFiles.TempPath(".sock");
        string filePath = TestFiles.TempPath(".dat");
        await File.WriteAllTextAsync(filePath, new string('\0', 64), Ct);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            using Process peer = StartPeer("send", socketPath, filePath);
            using Socket connection = await listener.AcceptAsync(Ct);
            using (ReceivedFds fds = await FdPassing.ReceiveAsync(connection, Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Ct))
            {
                using SafeFileHandle file = fds.Take("file");
                using var done = new InterruptEvent(fds.Take("done"), ownsHandle: true);
                // The peer opened the file; write through its fd and see it in the file by path.
                _kernel.PWrite(file, "from the receiver"u8, 0).ShouldBe(17);
                (await File.ReadAllTextAsync(filePath, Ct)).ShouldStartWith("from the receiver");
                done.Signal();
            }
            (await FinishAsync(peer)).ShouldBe(0);
        }
        finally
        {
            File.Delete(socketPath);
            File.Delete(filePath);
        }
    }

    [Fact]
    public async Task TwoProcesses_ThisProcessSendsFds_PeerUsesThem()
    {
        string socketPath = TestFiles.TempPath(".sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        try
        {
            using SafeFileHandle memfd = TestFiles.MemFd(4096);
            using var done = new InterruptEvent();
            using Process peer = StartPeer("receive", socketPath, "written by the peer");
            using (Socket connection = await listener.AcceptAsync(Ct))
            {
                FdPassing.Send(connection, [new NamedFd("file", memfd), new NamedFd("done", done.Handle)]);
                (await done.WaitAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Ct)).ShouldBe(1UL);
            }
            byte[] buffer = new byte[19];
            _kernel.PRead(memfd, buffer, 0).ShouldBe(19);
            Encoding.UTF8.GetString(buffer).ShouldBe("written by the peer");
            (await FinishAsync(peer)).ShouldBe(0);
        }
        finally
        {
            File.Delete(socketPath);
        }
    }

    [Fact]
    public async Task TwoProcesses_InheritedFdByNumber_PeerAdoptsIt()
    {
        using SafeFileHandle memfd = TestFiles.MemFd(4096);
        _kernel.PWrite(memfd, "inherited"u8, 0).ShouldBe(9);
        // Make it inheritable, as a launcher does for the fds it passes by number.
        int fd = (int)memfd.DangerousGetHandle();
        Libc.fcntl(fd, Libc.F_SETFD, 0).ShouldBe(0);
        using Process peer = StartPeer("adopt", fd.ToString(System.Globalization.CultureInfo.InvariantCulture), "inherited");
        Libc.fcntl(fd, Libc.F_SETFD, Libc.FD_CLOEXEC).ShouldBe(0);
        (await FinishAsync(peer)).ShouldBe(0);
    }
}
