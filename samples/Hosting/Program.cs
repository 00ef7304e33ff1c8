using System;
using Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// Configuration: appsettings.json, then VIRTIO_ environment variables, then the command line
// (--Blk:Path=disk.img --Blk:Socket=/run/blk.sock --Blk:Queues=2).
// appsettings.json is read from next to the program, not from the working directory; relative
// paths in it are relative to the working directory.
HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.AddEnvironmentVariables("VIRTIO_");
builder.Services.Configure<BlkServiceOptions>(builder.Configuration.GetSection("Blk"));
builder.Services.AddHostedService<VhostUserBlkService>();
await builder.Build().RunAsync();
