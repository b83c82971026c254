// SPDX-License-Identifier: MIT
using System.Diagnostics.Metrics;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Vfio.Core;

/// <summary>Adds VFIO to a service collection: options, the kernel port, the fd store, metrics, logging and
/// <see cref="VfioManager"/>. Backend packages then add themselves on the returned <see cref="VfioBuilder"/>.</summary>
/// <example>
/// <code>
/// builder.Services.AddVfio(builder.Configuration.GetSection(VfioOptions.SectionName))
///     .AddIommuFdBackend()
///     .AddLegacyBackend();
/// </code>
/// </example>
public static class VfioServiceCollectionExtensions
{
    /// <summary>
    /// Adds VFIO with options bound from <paramref name="configuration"/>, the <c>Vfio</c> section (e.g.
    /// <c>Vfio:Backend=iommufd</c>), validated when the host starts.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The <c>Vfio</c> section (<c>configuration.GetSection(VfioOptions.SectionName)</c>).</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    /// <remarks>
    /// Registered: <see cref="VfioOptions"/> (bound by the configuration binding source generator, validated on start:
    /// an unknown backend, conflicting fd settings, malformed fd references), <see cref="IKernel"/> (the running kernel
    /// unless one is registered already), <see cref="VfioFdStore"/> (filled from <see cref="VfioOptions.FdSocket"/> on
    /// first use), <see cref="VfioMetrics"/>, logging, <see cref="VfioManager"/>, and <see cref="IIommuBackend"/> as the
    /// manager's <see cref="VfioManager.SelectDefaultBackend"/>.
    /// </remarks>
    public static VfioBuilder AddVfio(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<VfioOptions>().Bind(configuration);
        return AddVfioCore(services);
    }

    /// <summary>Adds VFIO with options set in code, validated when the host starts.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options; null keeps the defaults (<c>Backend=auto</c>).</param>
    /// <returns>The builder, for the backend packages' <c>Add...Backend()</c>.</returns>
    /// <remarks>Registers what <see cref="AddVfio(IServiceCollection, IConfiguration)"/> does.</remarks>
    public static VfioBuilder AddVfio(this IServiceCollection services, Action<VfioOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        OptionsBuilder<VfioOptions> options = services.AddOptions<VfioOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }
        return AddVfioCore(services);
    }

    private static VfioBuilder AddVfioCore(IServiceCollection services)
    {
        services.AddOptions<VfioOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VfioOptions>, VfioOptionsValidator>());
        services.AddLogging();
        services.TryAddSingleton<IKernel>(LinuxKernel.Instance);
        services.TryAddSingleton(CreateFdStore);
        services.TryAddSingleton(sp => new VfioMetrics(sp.GetService<IMeterFactory>()));
        services.TryAddSingleton(sp => new VfioBackendSet(sp.GetServices<IommuBackendDescriptor>(), sp));
        services.TryAddSingleton(sp =>
        {
            // The IIommuBackend service is disposed by the container; resolving it before the manager exists makes
            // the container dispose it after the manager, i.e. after the manager's devices detached.
            try
            {
                sp.GetService<IIommuBackend>();
            }
            catch (VfioBackendUnavailableException)
            {
                // No machine-level default; the manager still selects per device and reports it then.
            }
            return CreateManager(sp);
        });
        services.TryAddSingleton(sp =>
        {
            VfioBackendSet set = sp.GetRequiredService<VfioBackendSet>();
            // A manager of its own (not the container's, which must be created after this service): selection only.
            IIommuBackend backend = CreateManager(sp).SelectDefaultBackend();
            set.HandedToContainer(backend);
            return backend;
        });
        return new VfioBuilder(services);
    }

#pragma warning disable CA2000 // A selection-only manager: it owns no space and no backend.
    private static VfioManager CreateManager(IServiceProvider sp) => new(
        sp.GetRequiredService<IOptions<VfioOptions>>().Value,
        sp.GetRequiredService<VfioBackendSet>(),
        sp.GetRequiredService<IKernel>(),
        sp.GetService<ILoggerFactory>(),
        sp.GetRequiredService<VfioMetrics>());
#pragma warning restore CA2000

    /// <summary>The fd store; with <see cref="VfioOptions.FdSocket"/> set, first receives one message of named fds
    /// from that inherited socket (borrowed: never closed here) and adds them.</summary>
    private static VfioFdStore CreateFdStore(IServiceProvider services)
    {
        VfioOptions options = services.GetRequiredService<IOptions<VfioOptions>>().Value;
        VfioFdStore? store = new(services.GetRequiredService<IKernel>());
        try
        {
            if (options.FdSocket is int fd)
            {
                Receive(store, fd, options.FdReceiveTimeout);
            }
            VfioFdStore result = store;
            store = null;
            return result;
        }
        finally
        {
            store?.Dispose();
        }
    }

    private static void Receive(VfioFdStore store, int fd, TimeSpan timeout)
    {
        try
        {
            // The socket is inherited: borrowed, its fd never closed here.
            using var handle = new SafeSocketHandle(fd, ownsHandle: false);
            using var socket = new Socket(handle);
            using ReceivedFds received = FdPassing.Receive(socket, timeout);
            store.Add(received);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException(
                $"Vfio:FdSocket ({fd}): no fds arrived within Vfio:FdReceiveTimeout ({timeout}); the launcher must send the named fds on that socket (FdPassing.Send).", e);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            throw new VfioException("receive passed fds", $"Vfio:FdSocket ({fd})",
                $"no fds were received: {e.Message}",
                "The launcher must start this process with a connected Unix stream or seqpacket socket at that fd number and send the named fds on it (FdPassing.Send) within Vfio:FdReceiveTimeout.");
        }
    }
}
