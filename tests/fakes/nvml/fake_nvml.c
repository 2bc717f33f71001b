/*
 * A fake libnvidia-ml.so.1 for carbonscope's tests. Build:
 *   gcc -shared -fPIC -O1 -Wl,-soname,libnvidia-ml.so.1 -o libnvidia-ml.so.1 fake_nvml.c
 * The real pynvml binding loads it through the normal dynamic-loader search (LD_LIBRARY_PATH).
 *
 * State comes from the file named by $CARBONSCOPE_FAKE_NVML_STATE, re-read on every call so a
 * test can change energies, processes or injected errors while the daemon runs. Lines:
 *   count N
 *   gpu I key=value ...     keys: name (underscores for spaces), uuid, energy_mj, power_mw,
 *                           limit_mw, util_gpu, util_mem, mem_total, mem_used, mig, mig_count
 *   proc I PID USED_BYTES SM_UTIL
 *   err I FUNCTION CODE     I = -1 for library-wide calls; FUNCTION = * for every call;
 *                           CODE 100000 (HANG) blocks the call until the line is gone
 * Struct layouts follow nvml.h as mirrored by pynvml (c_nvmlProcessInfo_v2_t, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_GPUS 64
#define MAX_PROCS 32
#define MAX_ERRS 256
#define MAX_MIG 8

typedef int nvmlReturn_t;
enum {
    HANG = 100000, /* not an NVML code: the call hangs, as a wedged driver ioctl does */
    OK = 0, UNINITIALIZED = 1, INVALID_ARGUMENT = 2, NOT_SUPPORTED = 3, NOT_FOUND = 6,
    INSUFFICIENT_SIZE = 7, DRIVER_NOT_LOADED = 9, GPU_IS_LOST = 15, UNKNOWN = 999
};

typedef struct { unsigned int pid; unsigned long long usedGpuMemory; unsigned int gpuInstanceId, computeInstanceId; } nvmlProcessInfo_t;
typedef struct { unsigned int pid; unsigned long long timeStamp; unsigned int smUtil, memUtil, encUtil, decUtil; } nvmlProcessUtilizationSample_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;

struct proc { unsigned int pid; unsigned long long used; unsigned int sm; };
struct gpu {
    char name[96], uuid[96];
    unsigned long long energy_mj, mem_total, mem_used;
    unsigned int power_mw, limit_mw, util_gpu, util_mem, mig, mig_count;
    int nprocs;
    struct proc procs[MAX_PROCS];
};
struct err { int gpu; char fn[80]; int code; };
struct mig { int parent, index; };

static struct gpu gpus[MAX_GPUS];
static struct mig migs[MAX_GPUS][MAX_MIG];
static struct err errs[MAX_ERRS];
static int gpu_count, err_count, initialised;

static void load_state(void) {
    const char *path = getenv("CARBONSCOPE_FAKE_NVML_STATE");
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];
    memset(gpus, 0, sizeof gpus);
    gpu_count = err_count = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int i;
        char *tok;
        if (sscanf(line, "count %d", &gpu_count) == 1) continue;
        if (strncmp(line, "gpu ", 4) == 0 && sscanf(line + 4, "%d", &i) == 1 && i >= 0 && i < MAX_GPUS) {
            struct gpu *g = &gpus[i];
            strtok(line, " \n");
            strtok(NULL, " \n");
            while ((tok = strtok(NULL, " \n")) != NULL) {
                char *eq = strchr(tok, '=');
                if (!eq) continue;
                *eq = '\0';
                const char *v = eq + 1;
                if (!strcmp(tok, "name")) {
                    snprintf(g->name, sizeof g->name, "%s", v);
                    for (char *c = g->name; *c; c++) if (*c == '_') *c = ' ';
                } else if (!strcmp(tok, "uuid")) snprintf(g->uuid, sizeof g->uuid, "%s", v);
                else if (!strcmp(tok, "energy_mj")) g->energy_mj = strtoull(v, NULL, 10);
                else if (!strcmp(tok, "power_mw")) g->power_mw = (unsigned) strtoul(v, NULL, 10);
                else if (!strcmp(tok, "limit_mw")) g->limit_mw = (unsigned) strtoul(v, NULL, 10);
                else if (!strcmp(tok, "util_gpu")) g->util_gpu = (unsigned) strtoul(v, NULL, 10);
                else if (!strcmp(tok, "util_mem")) g->util_mem = (unsigned) strtoul(v, NULL, 10);
                else if (!strcmp(tok, "mem_total")) g->mem_total = strtoull(v, NULL, 10);
                else if (!strcmp(tok, "mem_used")) g->mem_used = strtoull(v, NULL, 10);
                else if (!strcmp(tok, "mig")) g->mig = (unsigned) strtoul(v, NULL, 10);
                else if (!strcmp(tok, "mig_count")) g->mig_count = (unsigned) strtoul(v, NULL, 10);
            }
            continue;
        }
        unsigned int pid, sm;
        unsigned long long used;
        if (sscanf(line, "proc %d %u %llu %u", &i, &pid, &used, &sm) == 4 && i >= 0 && i < MAX_GPUS
            && gpus[i].nprocs < MAX_PROCS) {
            gpus[i].procs[gpus[i].nprocs++] = (struct proc){pid, used, sm};
            continue;
        }
        char fn[80];
        int code;
        if (sscanf(line, "err %d %79s %d", &i, fn, &code) == 3 && err_count < MAX_ERRS) {
            errs[err_count].gpu = i;
            snprintf(errs[err_count].fn, sizeof errs[err_count].fn, "%s", fn);
            errs[err_count++].code = code;
        }
    }
    fclose(f);
}

static int injected(int gpu, const char *fn) {
    for (;;) {
        int code = OK;
        for (int k = 0; k < err_count; k++)
            if (errs[k].gpu == gpu && (!strcmp(errs[k].fn, fn) || !strcmp(errs[k].fn, "*"))) {
                code = errs[k].code;
                break;
            }
        if (code != HANG) return code;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
        load_state();
    }
}

/* Every device call: reload state, resolve the handle, apply injected errors. */
#define DEVICE_CALL(handle, fn_name)                                          \
    load_state();                                                             \
    if (!initialised) return UNINITIALIZED;                                   \
    struct gpu *g = (struct gpu *) (handle);                                  \
    if (g < gpus || g >= gpus + MAX_GPUS) return INVALID_ARGUMENT;            \
    int index = (int) (g - gpus);                                             \
    if (index >= gpu_count) return GPU_IS_LOST;                               \
    int rc = injected(index, fn_name);                                        \
    if (rc != OK) return rc;

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void) flags;
    load_state();
    int rc = injected(-1, "nvmlInitWithFlags");
    if (rc != OK) return rc;
    initialised++;
    return OK;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) { if (initialised) initialised--; return OK; }

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case OK: return "Success";
    case UNINITIALIZED: return "Uninitialized";
    case NOT_SUPPORTED: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case NOT_FOUND: return "Not Found";
    case INSUFFICIENT_SIZE: return "Insufficient Size";
    case DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    load_state();
    snprintf(version, length, "550.00-fake");
    return OK;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    load_state();
    if (!initialised) return UNINITIALIZED;
    int rc = injected(-1, "nvmlDeviceGetCount_v2");
    if (rc != OK) return rc;
    *count = (unsigned) gpu_count;
    return OK;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    load_state();
    if (!initialised) return UNINITIALIZED;
    if (index >= (unsigned) gpu_count) return INVALID_ARGUMENT;
    int rc = injected((int) index, "nvmlDeviceGetHandleByIndex_v2");
    if (rc == OK) rc = injected((int) index, "*");
    if (rc != OK) return rc;
    *device = &gpus[index];
    return OK;
}

static int is_mig_handle(void *handle) {
    return (char *) handle >= (char *) migs && (char *) handle < (char *) migs + sizeof migs;
}

nvmlReturn_t nvmlDeviceGetName(void *device, char *name, unsigned int length) {
    if (is_mig_handle(device)) { snprintf(name, length, "MIG instance"); return OK; }
    DEVICE_CALL(device, "nvmlDeviceGetName");
    snprintf(name, length, "%s", g->name);
    return OK;
}

nvmlReturn_t nvmlDeviceGetUUID(void *device, char *uuid, unsigned int length) {
    if (is_mig_handle(device)) {
        struct mig *m = (struct mig *) device;
        load_state();
        snprintf(uuid, length, "MIG-%s-%d", gpus[m->parent].uuid + 4, m->index);
        return OK;
    }
    DEVICE_CALL(device, "nvmlDeviceGetUUID");
    snprintf(uuid, length, "%s", g->uuid);
    return OK;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *device, unsigned long long *energy) {
    DEVICE_CALL(device, "nvmlDeviceGetTotalEnergyConsumption");
    *energy = g->energy_mj;
    return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void *device, unsigned int *power) {
    DEVICE_CALL(device, "nvmlDeviceGetPowerUsage");
    *power = g->power_mw;
    return OK;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *device, unsigned int *limit) {
    DEVICE_CALL(device, "nvmlDeviceGetEnforcedPowerLimit");
    *limit = g->limit_mw;
    return OK;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(void *device, nvmlUtilization_t *utilization) {
    DEVICE_CALL(device, "nvmlDeviceGetUtilizationRates");
    if (g->mig) return NOT_SUPPORTED;  /* nvml.h: not supported on MIG-enabled GPUs */
    utilization->gpu = g->util_gpu;
    utilization->memory = g->util_mem;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(void *device, nvmlMemory_t *memory) {
    DEVICE_CALL(device, "nvmlDeviceGetMemoryInfo");
    memory->total = g->mem_total;
    memory->used = g->mem_used;
    memory->free = g->mem_total - g->mem_used;
    return OK;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned int *count, nvmlProcessInfo_t *infos) {
    DEVICE_CALL(device, "nvmlDeviceGetComputeRunningProcesses_v3");
    unsigned int n = (unsigned) g->nprocs;
    if (infos == NULL || *count < n) {
        *count = n;
        return n == 0 ? OK : INSUFFICIENT_SIZE;
    }
    for (unsigned int k = 0; k < n; k++)
        infos[k] = (nvmlProcessInfo_t){g->procs[k].pid, g->procs[k].used, 0xFFFFFFFFu, 0xFFFFFFFFu};
    *count = n;
    return OK;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(void *device, nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count, unsigned long long lastSeen) {
    DEVICE_CALL(device, "nvmlDeviceGetProcessUtilization");
    unsigned int n = (unsigned) g->nprocs;
    if (n == 0) return NOT_FOUND;  /* no samples since lastSeen */
    if (samples == NULL || *count < n) { *count = n; return INSUFFICIENT_SIZE; }
    for (unsigned int k = 0; k < n; k++)
        samples[k] = (nvmlProcessUtilizationSample_t){g->procs[k].pid, lastSeen + 1, g->procs[k].sm, 0, 0, 0};
    *count = n;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMigMode(void *device, unsigned int *current, unsigned int *pending) {
    DEVICE_CALL(device, "nvmlDeviceGetMigMode");
    *current = *pending = g->mig;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *device, unsigned int *count) {
    DEVICE_CALL(device, "nvmlDeviceGetMaxMigDeviceCount");
    *count = g->mig ? MAX_MIG : 0;
    return OK;
}

nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *device, unsigned int mig_index, void **mig_device) {
    DEVICE_CALL(device, "nvmlDeviceGetMigDeviceHandleByIndex");
    if (!g->mig || mig_index >= g->mig_count || mig_index >= MAX_MIG) return NOT_FOUND;
    migs[index][mig_index] = (struct mig){index, (int) mig_index};
    *mig_device = &migs[index][mig_index];
    return OK;
}
