# LifeLog on Windows: registers two Task Scheduler tasks for the current user.
#   LifeLog watchdog   every minute: `lifelog watchdog --once`
#   LifeLog AW check   every 2 minutes: `lifelog health`; after 3 failures in
#                      a row, restart the ActivityWatch server.
# Usage (PowerShell):  .\lifelog-tasks.ps1 -Lifelog C:\path\to\lifelog.exe -AwServer C:\path\to\aw-server.exe
#         remove them: .\lifelog-tasks.ps1 -Unregister
param(
    [string]$Lifelog = (Get-Command lifelog -ErrorAction SilentlyContinue).Source,
    [string]$AwServer = (Get-Command aw-server -ErrorAction SilentlyContinue).Source,
    [switch]$Unregister,
    [switch]$CheckAw
)
$ErrorActionPreference = 'Stop'

if ($CheckAw) {
    # Run by the "LifeLog AW check" task.
    & $Lifelog health | Out-Null
    if ($LASTEXITCODE -ne 0) {
        $failures = [int](& $Lifelog meta get aw.consecutive_failures)
        if ($failures -ge 3) {
            Get-Process -Name 'aw-server' -ErrorAction SilentlyContinue | Stop-Process -Force
            Start-Process -FilePath $AwServer -WindowStyle Hidden
        }
    }
    exit 0
}

$names = 'LifeLog watchdog', 'LifeLog AW check'
if ($Unregister) {
    foreach ($n in $names) { Unregister-ScheduledTask -TaskName $n -Confirm:$false -ErrorAction SilentlyContinue }
    exit 0
}
if (-not $Lifelog) { throw "lifelog not found: pass -Lifelog C:\path\to\lifelog.exe" }

$settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -MultipleInstances IgnoreNew `
    -ExecutionTimeLimit (New-TimeSpan -Minutes 5)
$every = { param($minutes) New-ScheduledTaskTrigger -Once -At (Get-Date) `
    -RepetitionInterval (New-TimeSpan -Minutes $minutes) }

$watchdog = New-ScheduledTaskAction -Execute $Lifelog -Argument 'watchdog --once'
Register-ScheduledTask -TaskName $names[0] -Action $watchdog -Trigger (& $every 1) -Settings $settings -Force | Out-Null

if ($AwServer) {
    $self = $MyInvocation.MyCommand.Path
    $check = New-ScheduledTaskAction -Execute 'powershell.exe' `
        -Argument "-NoProfile -ExecutionPolicy Bypass -File `"$self`" -CheckAw -Lifelog `"$Lifelog`" -AwServer `"$AwServer`""
    Register-ScheduledTask -TaskName $names[1] -Action $check -Trigger (& $every 2) -Settings $settings -Force | Out-Null
}
Write-Output "Registered: $($names -join ', ')"
