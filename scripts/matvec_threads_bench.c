// One-token Q4_0x16 matvec over a 1 GiB matrix from memory: one thread, two threads each on a half,
// and two threads claiming row chunks as the pool does; GB/s of weights read (wall clock). Shows
// how far two threads of the decode kernel get against scripts/membw.c on the same machine.
// Build: S=Sources/CKernels; clang -O3 -fno-math-errno -I$S -I$S/include $S/*.c scripts/matvec_threads_bench.c -o /tmp/matvec_threads_bench -lpthread -lm
// Run:   flock /work/bench.lock /tmp/matvec_threads_bench [rows per claimed chunk, 256]
#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float frand(void){return (float)rand()/(float)RAND_MAX*2-1;}
static int n=2048; static int64_t rows; static size_t rs, xs; static char *w, *x; static float *y; static int mode; static atomic_long next; static int chunk=256;
static void *run(void *a){ long id=(long)a;
  if(mode==0){ int64_t h=rows/2/16*16; int64_t b=id?h:0, e=id?rows:h; dq_matvec_rows(DQ_TYPE_Q4_0_X16,n,w,rs,x,y,b,e); }
  else { for(;;){ long c=atomic_fetch_add(&next,1); int64_t b=c*chunk; if(b>=rows)break; int64_t e=b+chunk<rows?b+chunk:rows; dq_matvec_rows(DQ_TYPE_Q4_0_X16,n,w,rs,x,y,b,e);} }
  return 0;}
int main(int argc,char**argv){ if(argc>1)chunk=atoi(argv[1]); dq_set_weights_stream_from_memory(true);
  rs=dq_row_size(DQ_TYPE_Q4_0,n); xs=dq_row_size(dq_vec_dot_type(DQ_TYPE_Q4_0_X16),n); rows=(int64_t)1024*1048576/rs/16*16;
  char*plain=malloc(rs*rows); w=malloc(rs*rows); x=malloc(xs); y=malloc(4*rows); float*f=malloc(4*n);
  for(int r=0;r<256;r++){for(int i=0;i<n;i++)f[i]=frand(); dq_quantize_row(DQ_TYPE_Q4_0,f,plain+r*rs,n);} for(int64_t r=256;r<rows;r++)memcpy(plain+r*rs,plain+(r%256)*rs,rs);
  dq_q4_0_x16_pack_rows(plain,w,n,rows); free(plain); for(int i=0;i<n;i++)f[i]=frand(); dq_quantize_row(dq_vec_dot_type(DQ_TYPE_Q4_0_X16),f,x,n);
  for(int rep=0;rep<3;rep++){ double t0=now(); dq_matvec_rows(DQ_TYPE_Q4_0_X16,n,w,rs,x,y,0,rows); double t1=now();
    pthread_t th[2]; mode=0; for(long i=0;i<2;i++)pthread_create(&th[i],0,run,(void*)i); for(int i=0;i<2;i++)pthread_join(th[i],0); double t2=now();
    mode=1; atomic_store(&next,0); for(long i=0;i<2;i++)pthread_create(&th[i],0,run,(void*)i); for(int i=0;i<2;i++)pthread_join(th[i],0); double t3=now();
    double gb=rs*rows/1e9; printf("1 thread %.1f GB/s; 2 threads halves %.1f GB/s; 2 threads %d-row chunks %.1f GB/s\n", gb/(t1-t0), gb/(t2-t1), chunk, gb/(t3-t2)); }
}
